/**
 * Adapter switch time in the playground, SmolLM2-135M-Instruct on the CPU:
 *
 * - shared base: with the base graph's session already loaded, a new adapter's
 *   adapter_config.json and adapter_model.safetensors are read from the local disk, parsed
 *   and turned into the session's LoRA input tensors (at the adapter's own rank on a graph
 *   with a dynamic rank, padded to the maximum rank on an older fixed-rank graph).
 * - merged baseline: an InferenceSession is created for the same adapter merged into an
 *   ordinary ONNX graph, read from the same local disk.
 *
 * The switch time is each side's time until the next session.run could start: tensors ready
 * on one side, session created on the other. Neither includes the prompt's prefill, which is
 * reported separately as the time to the first token. Both run in this one process on the
 * same machine, for the same prompt, alternating per adapter. Usage:
 *
 *   nice npx tsx bench/playground-switch.ts [--adapters 4] [--rank 16] [--repeats 1]
 *
 * CPU times (process.cpuUsage, all threads, onnxruntime's included) are reported beside the
 * wall times, because they change less with other load on the machine.
 *
 * It prepares .data/bench-playground/ once (random PEFT adapters, the shared graph with
 * maximum rank 64, and one merged graph per adapter); later runs reuse it, so delete
 * shared/ to measure a graph from a newer exporter.
 */
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { adapterFeeds } from '../server/playground/adapters';
import { baseGraph } from '../server/playground/graph';
import { Generation, pickToken, promptTokens } from '../server/playground/generate';

const root = path.resolve(import.meta.dirname, '..');
const { values: options } = parseArgs({ options: { adapters: { type: 'string', default: '4' }, rank: { type: 'string', default: '16' }, repeats: { type: 'string', default: '1' } } });
// Shared-base switches per adapter; the reported figure is their median, because one switch
// takes tens of milliseconds and a busy machine's scheduler adds as much.
const REPEATS = Number(options.repeats);
const ADAPTERS = Number(options.adapters);
const RANK = Number(options.rank);
const MODEL = path.join(root, '.data/models/smollm2-135m-instruct');
const WORK = path.join(root, '.data/bench-playground');
const PROMPT = 'What is the capital of France? Answer in one word.';

function python(args: string[]): void {
  const result = spawnSync(path.join(root, '.venv/bin/python'), args, { cwd: path.join(root, 'gpu-runner'), stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, HF_HUB_OFFLINE: '1' } });
  if (result.status !== 0) throw new Error(`python ${args.slice(0, 3).join(' ')} failed with ${result.status}`);
}

const MAKE_ADAPTER = `
import sys, torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM
model_dir, out, rank, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.manual_seed(seed)
model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
                       LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", init_lora_weights=False))
model.save_pretrained(out)
`;

const EXPORT_MERGED = `
import sys
from pathlib import Path
from worker.onnx_export import export_bundle
export_bundle(Path(sys.argv[1]), Path(sys.argv[2]), adapter_dir=Path(sys.argv[3]), lora_inputs=False, merged=True, int8=False)
`;

async function exists(file: string): Promise<boolean> {
  return fs.stat(file).then(() => true, () => false);
}

async function prepare(): Promise<void> {
  if (!(await exists(path.join(WORK, 'shared', 'manifest.json')))) {
    console.error('exporting the shared base graph (max rank 64)…');
    python(['-m', 'worker', 'export-onnx', '--model', MODEL, '--out', path.join(WORK, 'shared'), '--lora-inputs', '--no-merged', '--max-rank', '64']);
  }
  for (let i = 0; i < ADAPTERS; i++) {
    const adapter = path.join(WORK, `adapter-${i}`);
    if (!(await exists(path.join(adapter, 'adapter_model.safetensors')))) {
      console.error(`making adapter ${i} (rank ${RANK}, all linear layers)…`);
      python(['-c', MAKE_ADAPTER, MODEL, adapter, String(RANK), String(100 + i)]);
    }
    if (!(await exists(path.join(WORK, `merged-${i}`, 'manifest.json')))) {
      console.error(`exporting merged graph ${i}…`);
      python(['-c', EXPORT_MERGED, MODEL, path.join(WORK, `merged-${i}`), adapter]);
    }
  }
}

/** Runs the merged graph on the prompt and picks the first token, as the playground would. */
async function mergedFirstToken(session: ort.InferenceSession, prompt: number[], layers: number, kvHeads: number, headDim: number): Promise<number> {
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', BigInt64Array.from(prompt, BigInt), [1, prompt.length]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(prompt.length).fill(1n), [1, prompt.length]),
    position_ids: new ort.Tensor('int64', BigInt64Array.from(prompt, (_, i) => BigInt(i)), [1, prompt.length]),
  };
  for (let layer = 0; layer < layers; layer++) {
    for (const kind of ['key', 'value']) feeds[`past_key_values.${layer}.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [1, kvHeads, 0, headDim]);
  }
  const logits = (await session.run(feeds)).logits!;
  const vocab = logits.dims[2]!;
  return pickToken((logits.data as Float32Array).subarray((prompt.length - 1) * vocab), 0, Math.random);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(): Promise<void> {
  await prepare();
  const loadStart = performance.now();
  const graph = await baseGraph('smollm2-135m-instruct', path.join(WORK, 'shared'));
  const baseLoadMs = performance.now() - loadStart;
  const prompt = promptTokens(graph, PROMPT);
  const { numLayers, numKeyValueHeads, headDim } = graph.manifest;

  // One warm-up generation, so neither side pays for onnxruntime's first-run allocations.
  await new Generation(graph, graph.zeroLora, prompt, { temperature: 0, maxTokens: 1, seed: 1 }).step();

  const shared: { tensorsMs: number; tensorsCpuMs: number; readMs: number; firstTokenMs: number; token: number }[] = [];
  const merged: { sessionMs: number; sessionCpuMs: number; firstTokenMs: number; token: number }[] = [];
  const cpuMsSince = (start: NodeJS.CpuUsage) => {
    const used = process.cpuUsage(start);
    return (used.user + used.system) / 1000;
  };
  for (let i = 0; i < ADAPTERS; i++) {
    const adapter = path.join(WORK, `adapter-${i}`);
    const switches: { tensorsMs: number; tensorsCpuMs: number; readMs: number }[] = [];
    let feeds: Record<string, ort.Tensor> = {};
    let start = 0;
    for (let repeat = 0; repeat < REPEATS; repeat++) {
      let readMs = 0;
      const cpuStart = process.cpuUsage();
      start = performance.now();
      // Unique keys and a zero cap: every switch reads and converts the tensors again.
      feeds = await adapterFeeds(graph, {
        configSha256: `bench-${i}-${start}`, weightsSha256: `bench-${i}-${start}`,
        readConfig: () => fs.readFile(path.join(adapter, 'adapter_config.json')),
        readWeights: async () => {
          const bytes = await fs.readFile(path.join(adapter, 'adapter_model.safetensors'));
          readMs = performance.now() - start;
          return bytes;
        },
      }, 0);
      switches.push({ tensorsMs: performance.now() - start, tensorsCpuMs: cpuMsSince(cpuStart), readMs });
    }
    const tensorsMs = median(switches.map((entry) => entry.tensorsMs));
    const tensorsCpuMs = median(switches.map((entry) => entry.tensorsCpuMs));
    const readMs = median(switches.map((entry) => entry.readMs));
    const generation = new Generation(graph, feeds, prompt, { temperature: 0, maxTokens: 1, seed: 1 });
    const token = pickToken(await generation.logits(prompt), 0, Math.random);
    shared.push({ tensorsMs, tensorsCpuMs, readMs, firstTokenMs: performance.now() - start, token });

    const mergedCpuStart = process.cpuUsage();
    const mergedStart = performance.now();
    const session = await ort.InferenceSession.create(path.join(WORK, `merged-${i}`, 'model.onnx'), { graphOptimizationLevel: 'all', executionMode: 'sequential' });
    const sessionMs = performance.now() - mergedStart;
    const sessionCpuMs = cpuMsSince(mergedCpuStart);
    const mergedToken = await mergedFirstToken(session, prompt, numLayers, numKeyValueHeads, headDim);
    merged.push({ sessionMs, sessionCpuMs, firstTokenMs: performance.now() - mergedStart, token: mergedToken });
    await session.release();
  }

  const sharedFirst = median(shared.map((s) => s.firstTokenMs));
  const mergedFirst = median(merged.map((m) => m.firstTokenMs));
  const sharedSwitch = median(shared.map((s) => s.tensorsMs));
  const mergedSwitch = median(merged.map((m) => m.sessionMs));
  console.log(JSON.stringify({
    machine: `${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    onnxruntime: ort.env.versions.common, adapters: ADAPTERS, rank: RANK, maxRank: graph.shape.maxRank, promptTokens: prompt.length,
    baseSessionLoadMs: Math.round(baseLoadMs),
    dynamicRank: graph.shape.dynamicRank,
    repeats: REPEATS,
    shared: shared.map((s) => ({ tensorsMs: Number(s.tensorsMs.toFixed(1)), tensorsCpuMs: Number(s.tensorsCpuMs.toFixed(1)), readMs: Number(s.readMs.toFixed(1)), firstTokenMs: Math.round(s.firstTokenMs) })),
    merged: merged.map((m) => ({ sessionMs: Math.round(m.sessionMs), sessionCpuMs: Math.round(m.sessionCpuMs), firstTokenMs: Math.round(m.firstTokenMs) })),
    sameFirstToken: shared.map((s, i) => s.token === merged[i]!.token),
    medianSharedSwitchMs: Number(sharedSwitch.toFixed(1)), medianMergedSwitchMs: Math.round(mergedSwitch),
    switchSpeedup: Number((mergedSwitch / sharedSwitch).toFixed(1)),
    medianSharedSwitchCpuMs: Number(median(shared.map((s) => s.tensorsCpuMs)).toFixed(1)), medianMergedSwitchCpuMs: Math.round(median(merged.map((m) => m.sessionCpuMs))),
    medianSharedFirstTokenMs: Math.round(sharedFirst), medianMergedFirstTokenMs: Math.round(mergedFirst),
    speedup: Number((mergedFirst / sharedFirst).toFixed(1)),
  }, null, 1));
}

await main();
