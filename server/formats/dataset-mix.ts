/**
 * Mixing general instruction data into a domain data set. Training on domain data alone can
 * make a model forget general skills; a share of general examples (10-30% is a common choice)
 * limits that.
 */
import { seededOrder } from './dataset-clean';
import type { DatasetFormat, Example } from './dataset-file';

export const MAX_MIX_RATIO = 0.5;

export interface MixResult {
  examples: Example[];
  // General examples added; fewer than `requested` when the general set is smaller.
  count: number;
  requested: number;
}

/**
 * Adds general examples so that they make up `ratio` of the result: round(n × ratio / (1 − ratio))
 * for n domain examples, drawn without replacement in a seeded order. The result is shuffled
 * with the same seed, so domain and general examples are interleaved.
 */
export function mixGeneral(domain: Example[], format: DatasetFormat, general: Example[], ratio: number, seed: number): MixResult {
  if (!(ratio >= 0 && ratio <= MAX_MIX_RATIO)) throw new Error(`mix ratio ${ratio} is outside 0-${MAX_MIX_RATIO}; use a share such as 0.2 for 20%`);
  if (format === 'text' && ratio > 0) throw new Error('general instruction data can be mixed only into prompt/completion or messages data sets, not plain text');
  const requested = Math.round((domain.length * ratio) / (1 - ratio));
  const picked = seededOrder(general.length, seed).slice(0, requested).map((index) => convert(general[index]!, format));
  const combined = [...domain, ...picked];
  const order = seededOrder(combined.length, seed + 1);
  return { examples: order.map((index) => combined[index]!), count: picked.length, requested };
}

function convert(example: Example, format: DatasetFormat): Example {
  if (format === 'messages' && 'prompt' in example) {
    return { messages: [{ role: 'user', content: example.prompt }, { role: 'assistant', content: example.completion }] };
  }
  if (format === 'prompt-completion' && 'messages' in example) {
    const users = example.messages.filter((m) => m.role !== 'assistant');
    const last = example.messages[example.messages.length - 1]!;
    // Only a single user and assistant turn maps onto prompt/completion without losing turns.
    if (example.messages.length === 2 && users.length === 1 && users[0]!.role === 'user') return { prompt: users[0]!.content, completion: last.content };
    throw new Error('a multi-turn conversation cannot be mixed into a prompt/completion data set; mix a prompt/completion set instead');
  }
  if ('text' in example) throw new Error('a plain-text data set cannot be mixed in as general instruction data');
  return example;
}
