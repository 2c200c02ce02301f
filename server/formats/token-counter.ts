/**
 * Token counts of data set examples with a base model's own tokenizer and chat template,
 * matching what the worker feeds the model (gpu-runner/worker/data.py):
 * - prompt/completion and messages examples are rendered with the chat template (a
 *   prompt/completion pair as one user and one assistant turn) and tokenized without
 *   adding special tokens, because the template already writes them;
 * - a text example is its tokens followed by one end-of-sequence token.
 */
import { Template } from '@huggingface/jinja';
import type { Tokenizer } from '@huggingface/tokenizers';
import type { ChatMessage, Example, TokenCounter } from './dataset-file';


export function createTokenCounter(tokenizer: Tokenizer, chatTemplate: string, specialTokens: Record<string, unknown> = {}): TokenCounter {
  const template = new Template(chatTemplate);
  const count = (text: string) => tokenizer.encode(text, { add_special_tokens: false }).ids.length;
  return {
    text: count,
    example(example: Example) {
      if ('text' in example) return count(example.text) + 1;
      const messages: ChatMessage[] = 'messages' in example
        ? example.messages
        : [{ role: 'user', content: example.prompt }, { role: 'assistant', content: example.completion }];
      return count(template.render({ ...specialTokens, messages, add_generation_prompt: false }));
    },
  };
}

/** Picks the chat template: the `chat_template.jinja` file transformers 5 writes, else the tokenizer config's field. */
export function chatTemplateOf(tokenizerConfig: Record<string, unknown>, templateFile: string | null): string | null {
  if (templateFile !== null && templateFile.trim() !== '') return templateFile;
  const field = tokenizerConfig.chat_template;
  if (typeof field === 'string') return field;
  if (Array.isArray(field)) {
    const named = field.find((entry) => (entry as { name?: string }).name === 'default') as { template?: string } | undefined;
    return named?.template ?? null;
  }
  return null;
}

/** Returns the special-token strings a chat template may refer to (bos_token, eos_token and others). */
export function specialTokensOf(tokenizerConfig: Record<string, unknown>): Record<string, string> {
  const result: Record<string, string> = {};
  for (const key of ['bos_token', 'eos_token', 'pad_token', 'unk_token']) {
    const value = tokenizerConfig[key];
    if (typeof value === 'string') result[key] = value;
    else if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') result[key] = (value as { content: string }).content;
  }
  return result;
}

/**
 * Wraps a counter with caches of its results, so that one request counts each text and each
 * example once although cleaning and the final report both need the counts. Tokenization is
 * the slowest step of validation (about 1 ms per field of a few hundred characters).
 */
export function memoizeCounter(counter: TokenCounter): TokenCounter {
  const texts = new Map<string, number>();
  const examples = new Map<string, number>();
  return {
    text(text) {
      let count = texts.get(text);
      if (count === undefined) {
        count = counter.text(text);
        texts.set(text, count);
      }
      return count;
    },
    example(example) {
      const key = JSON.stringify(example);
      let count = examples.get(key);
      if (count === undefined) {
        count = counter.example(example);
        examples.set(key, count);
      }
      return count;
    },
  };
}
