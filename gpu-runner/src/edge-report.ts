import { fork } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { EdgeReport } from '../../server/contracts/runner';
import type { MeasureRequest, MeasureResult, ReferenceFile } from './edge-measure';

const MEASURE_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'edge-measure.ts');
// Graphs the report measures; the lora-inputs graph needs adapter inputs and is checked by the worker tests instead.
const MEASURED_VARIANTS = ['merged', 'merged-int8'];
const MEASURE_TIMEOUT_MS = 30 * 60 * 1000;

interface Manifest {
  numLayers: number;
  numKeyValueHeads: number;
  headDim: number;
  variants: { name: string; file: string; dataFiles: string[] }[];
}

/** Runs one measurement in a child process (inheriting the runner's loader flags) and returns its result. */
function measureInChild(request: MeasureRequest): Promise<MeasureResult> {
  return new Promise((resolve, reject) => {
    const child = fork(MEASURE_SCRIPT, [JSON.stringify(request)], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    let stderr = '';
    let settled = false;
    child.stderr?.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-2000); });
    const timer = setTimeout(() => child.kill('SIGKILL'), MEASURE_TIMEOUT_MS);
    child.on('message', (message: { ok: boolean; result?: MeasureResult; message?: string }) => {
      settled = true;
      if (message.ok) resolve(message.result!);
      else reject(new Error(`measuring ${path.basename(request.graphPath)} failed: ${message.message}`));
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (!settled) reject(new Error(`measuring ${path.basename(request.graphPath)} ended with ${signal ?? `code ${code}`} and no result: ${stderr.trim()}`));
    });
  });
}

/**
 * Measures the merged fp32 and int8 graphs of an exported bundle against the worker's PyTorch
 * reference: logit parity, top-1 agreement, milliseconds per token, peak memory, file size and
 * the domain task's accuracy. Variants run one after another so their timings do not overlap.
 */
export async function measureEdgeBundle(options: { bundleDir: string; referenceDir: string; log: Logger }): Promise<EdgeReport> {
  const { bundleDir, referenceDir, log } = options;
  const manifest = JSON.parse(await fs.readFile(path.join(bundleDir, 'manifest.json'), 'utf8')) as Manifest;
  const reference = JSON.parse(await fs.readFile(path.join(referenceDir, 'reference.json'), 'utf8')) as ReferenceFile;
  const ort = await import('onnxruntime-node');

  const variants: EdgeReport['variants'] = [];
  const predictions = new Map<string, number[] | null>();
  for (const variant of manifest.variants.filter((entry) => MEASURED_VARIANTS.includes(entry.name))) {
    const graphPath = path.join(bundleDir, variant.file);
    const result = await measureInChild({
      graphPath, referenceDir, numLayers: manifest.numLayers, numKeyValueHeads: manifest.numKeyValueHeads, headDim: manifest.headDim,
    });
    let sizeBytes = 0;
    for (const name of [variant.file, ...variant.dataFiles]) sizeBytes += (await fs.stat(path.join(bundleDir, name))).size;
    predictions.set(variant.name, result.taskPredictions);
    variants.push({
      name: variant.name, file: variant.file, sizeBytes, maxAbsLogitDiff: result.maxAbsLogitDiff, top1Agreement: result.top1Agreement,
      msPerToken: result.msPerToken, peakMemoryBytes: result.peakMemoryBytes, taskAccuracy: accuracy(reference, result.taskPredictions),
    });
    log.info({ variant: variant.name, maxAbsLogitDiff: result.maxAbsLogitDiff, msPerToken: result.msPerToken }, 'edge variant measured');
  }

  const fp32 = predictions.get('merged');
  const int8 = predictions.get('merged-int8');
  const pytorchPredictions = reference.task?.items.map((item) => {
    const scores = item.choices.map((choice) => choice.pytorchLogLikelihood);
    return scores.indexOf(Math.max(...scores));
  }) ?? null;
  return {
    runtime: `onnxruntime-node ${ort.env.versions.common ?? 'unknown'} (CPU)`,
    prompts: reference.prompts.length,
    generateTokens: reference.generateTokens,
    task: reference.task ? { id: reference.task.name, items: reference.task.items.length } : null,
    pytorch: { msPerToken: reference.pytorchMsPerToken, taskAccuracy: accuracy(reference, pytorchPredictions) },
    variants,
    int8TaskAgreement: fp32 && int8 && fp32.length > 0 ? fp32.filter((choice, i) => choice === int8[i]).length / fp32.length : null,
  };
}

function accuracy(reference: ReferenceFile, predictions: number[] | null | undefined): number | null {
  if (!reference.task || !predictions || predictions.length === 0) return null;
  return predictions.filter((choice, i) => choice === reference.task!.items[i]!.gold).length / predictions.length;
}
