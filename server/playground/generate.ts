/**
 * Token-by-token generation on a shared-base graph with its key/value cache: greedy at
 * temperature 0, otherwise sampling from softmax(logits / temperature) with a seeded
 * generator, so one seed gives the same text again.
 */
import * as ort from 'onnxruntime-node';
import type { BaseGraph } from './graph';
import { seededRandom } from '../formats/dataset-clean';

export interface GenerationOptions {
  temperature: number;
  maxTokens: number;
  seed: number;
}

/** Picks the next token from one row of logits. */
export function pickToken(logits: Float32Array, temperature: number, random: () => number): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  if (temperature <= 0) return best;

  const max = logits[best]!;
  const weights = new Float64Array(logits.length);
  let total = 0;
  for (let i = 0; i < logits.length; i++) {
    weights[i] = Math.exp((logits[i]! - max) / temperature);
    total += weights[i]!;
  }
  let target = random() * total;
  for (let i = 0; i < weights.length; i++) {
    target -= weights[i]!;
    if (target <= 0) return i;
  }
  return best;
}

/** Renders one user turn with the model's chat template and tokenizes it. */
export function promptTokens(graph: BaseGraph, prompt: string): number[] {
  const text = graph.chatTemplate
    ? graph.chatTemplate.render({ ...graph.specialTokens, messages: [{ role: 'user', content: prompt }], add_generation_prompt: true })
    : prompt;
  // The template already writes the special tokens, so the tokenizer adds none.
  return graph.tokenizer.encode(text, { add_special_tokens: !graph.chatTemplate }).ids;
}

/** One generation in progress: call `step` until it returns null. */
export class Generation {
  private past: Record<string, ort.Tensor> = {};
  private length = 0;
  private readonly generated: number[] = [];
  private text = '';
  private nextInput: number[];
  private readonly random: () => number;
  done = false;

  constructor(private readonly graph: BaseGraph, private readonly lora: Record<string, ort.Tensor>, prompt: number[], private readonly options: GenerationOptions) {
    this.nextInput = prompt;
    this.random = seededRandom(options.seed);
    const { numLayers, numKeyValueHeads, headDim } = graph.manifest;
    for (let layer = 0; layer < numLayers; layer++) {
      for (const kind of ['key', 'value']) this.past[`past_key_values.${layer}.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [1, numKeyValueHeads, 0, headDim]);
    }
  }

  /** Runs the graph on `input` after the cached tokens and returns the logits of its last position. */
  async logits(input: number[]): Promise<Float32Array> {
    const seq = input.length;
    const total = this.length + seq;
    const feeds: Record<string, ort.Tensor> = {
      ...this.lora,
      ...this.past,
      input_ids: new ort.Tensor('int64', BigInt64Array.from(input, BigInt), [1, seq]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from({ length: seq }, (_, i) => BigInt(this.length + i)), [1, seq]),
    };
    const outputs = await this.graph.session.run(feeds);
    for (let layer = 0; layer < this.graph.manifest.numLayers; layer++) {
      for (const kind of ['key', 'value']) this.past[`past_key_values.${layer}.${kind}`] = outputs[`present.${layer}.${kind}`]!;
    }
    this.length = total;
    const logits = outputs.logits!;
    const vocab = logits.dims[2]!;
    return (logits.data as Float32Array).subarray((seq - 1) * vocab, seq * vocab);
  }

  /** Generates one token and returns the new text it adds (possibly empty), or null when finished. */
  async step(): Promise<string | null> {
    if (this.done) return null;
    if (this.generated.length >= this.options.maxTokens) {
      this.done = true;
      return null;
    }
    const token = pickToken(await this.logits(this.nextInput), this.options.temperature, this.random);
    if (this.graph.eosTokenIds.has(token)) {
      this.done = true;
      return null;
    }
    this.generated.push(token);
    this.nextInput = [token];
    // Decoding the whole output each time keeps characters split across tokens whole.
    const text = this.graph.tokenizer.decode(this.generated, { skip_special_tokens: true });
    const added = text.startsWith(this.text) ? text.slice(this.text.length) : '';
    this.text = text;
    return added;
  }

  get tokenCount(): number {
    return this.generated.length;
  }
}
