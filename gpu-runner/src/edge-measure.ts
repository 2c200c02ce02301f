/**
 * Measures one ONNX graph of an edge bundle with onnxruntime-node, in a process of its own so
 * that its peak resident set size belongs to that graph alone. Started by edge-report.ts with
 * child_process.fork; reads its request from process.argv[2] (JSON) and sends one message back.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import * as ort from 'onnxruntime-node';

export interface MeasureRequest {
  graphPath: string;
  referenceDir: string;
  numLayers: number;
  numKeyValueHeads: number;
  headDim: number;
}

export interface ReferenceFile {
  vocabSize: number;
  logitsFile: string;
  prompts: { text: string; ids: number[] }[];
  generateTokens: number;
  task: { name: string; items: { id: string; contextIds: number[]; choices: { ids: number[]; pytorchLogLikelihood: number }[]; gold: number }[] } | null;
  pytorchMsPerToken: number;
}

export interface MeasureResult {
  maxAbsLogitDiff: number;
  top1Agreement: number;
  msPerToken: number;
  peakMemoryBytes: number;
  // Index of the predicted choice per task item (arg max of the summed log-likelihood).
  taskPredictions: number[] | null;
}

type Feeds = Record<string, ort.Tensor>;

function int64(values: number[]): ort.Tensor {
  return new ort.Tensor('int64', BigInt64Array.from(values.map(BigInt)), [1, values.length]);
}

function argMax(values: Float32Array, offset: number, length: number): number {
  let best = 0;
  for (let i = 1; i < length; i += 1) if (values[offset + i]! > values[offset + best]!) best = i;
  return best;
}

/** Runs new tokens after `past` (a cache of `pastLength` tokens) and returns the logits and the next cache. */
async function step(session: ort.InferenceSession, request: MeasureRequest, ids: number[], past: Feeds, pastLength: number) {
  const feeds: Feeds = {
    input_ids: int64(ids),
    attention_mask: int64(new Array(pastLength + ids.length).fill(1)),
    position_ids: int64(ids.map((_, i) => pastLength + i)),
    ...past,
  };
  const outputs = await session.run(feeds);
  const next: Feeds = {};
  for (let i = 0; i < request.numLayers; i += 1) {
    next[`past_key_values.${i}.key`] = outputs[`present.${i}.key`]!;
    next[`past_key_values.${i}.value`] = outputs[`present.${i}.value`]!;
  }
  return { logits: outputs.logits!.data as Float32Array, cache: next };
}

function emptyCache(request: MeasureRequest): Feeds {
  const cache: Feeds = {};
  const dims = [1, request.numKeyValueHeads, 0, request.headDim];
  for (let i = 0; i < request.numLayers; i += 1) {
    cache[`past_key_values.${i}.key`] = new ort.Tensor('float32', new Float32Array(0), dims);
    cache[`past_key_values.${i}.value`] = new ort.Tensor('float32', new Float32Array(0), dims);
  }
  return cache;
}

function logSoftmaxAt(logits: Float32Array, offset: number, vocab: number, token: number): number {
  let max = -Infinity;
  for (let i = 0; i < vocab; i += 1) max = Math.max(max, logits[offset + i]!);
  let sum = 0;
  for (let i = 0; i < vocab; i += 1) sum += Math.exp(logits[offset + i]! - max);
  return logits[offset + token]! - max - Math.log(sum);
}

export async function measure(request: MeasureRequest): Promise<Omit<MeasureResult, 'peakMemoryBytes'>> {
  const reference = JSON.parse(await fs.readFile(path.join(request.referenceDir, 'reference.json'), 'utf8')) as ReferenceFile;
  const raw = await fs.readFile(path.join(request.referenceDir, reference.logitsFile));
  const vocab = reference.vocabSize;
  if (raw.byteLength !== reference.prompts.length * vocab * 4) {
    throw new Error(`${reference.logitsFile} has ${raw.byteLength} bytes, expected ${reference.prompts.length} prompts × ${vocab} float32 logits`);
  }
  const expected = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  const session = await ort.InferenceSession.create(request.graphPath, { executionProviders: ['cpu'] });

  let maxAbsLogitDiff = 0;
  let agreeing = 0;
  for (const [index, prompt] of reference.prompts.entries()) {
    const { logits } = await step(session, request, prompt.ids, emptyCache(request), 0);
    const last = (prompt.ids.length - 1) * vocab;
    for (let i = 0; i < vocab; i += 1) maxAbsLogitDiff = Math.max(maxAbsLogitDiff, Math.abs(logits[last + i]! - expected[index * vocab + i]!));
    if (argMax(logits, last, vocab) === argMax(expected, index * vocab, vocab)) agreeing += 1;
  }

  // Greedy decoding after the first prompt; only the cached single-token steps are timed, as in the worker.
  const prompt = reference.prompts[0]!.ids;
  let { logits, cache } = await step(session, request, prompt, emptyCache(request), 0);
  let token = argMax(logits, (prompt.length - 1) * vocab, vocab);
  const started = performance.now();
  for (let i = 0; i < reference.generateTokens; i += 1) {
    ({ logits, cache } = await step(session, request, [token], cache, prompt.length + i));
    token = argMax(logits, 0, vocab);
  }
  const msPerToken = (performance.now() - started) / reference.generateTokens;

  let taskPredictions: number[] | null = null;
  if (reference.task) {
    taskPredictions = [];
    for (const item of reference.task.items) {
      const scores = [];
      for (const choice of item.choices) {
        const ids = [...item.contextIds, ...choice.ids];
        const { logits: choiceLogits } = await step(session, request, ids, emptyCache(request), 0);
        let sum = 0;
        for (const [k, tokenId] of choice.ids.entries()) sum += logSoftmaxAt(choiceLogits, (item.contextIds.length - 1 + k) * vocab, vocab, tokenId);
        scores.push(sum);
      }
      taskPredictions.push(scores.indexOf(Math.max(...scores)));
    }
  }
  await session.release();
  return { maxAbsLogitDiff, top1Agreement: agreeing / reference.prompts.length, msPerToken, taskPredictions };
}

// Run as a forked child: measure, report with the process's peak RSS (resourceUsage is in KiB), exit.
if (process.send && process.argv[2]) {
  const request = JSON.parse(process.argv[2]) as MeasureRequest;
  measure(request).then(
    (result) => process.send!({ ok: true, result: { ...result, peakMemoryBytes: process.resourceUsage().maxRSS * 1024 } }, () => process.exit(0)),
    (error: unknown) => process.send!({ ok: false, message: (error as Error).message }, () => process.exit(1)),
  );
}
