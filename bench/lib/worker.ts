/**
 * Runs the Python worker directly (`python -m worker run --spec`), without the app, S3 or a
 * runner, for benchmarks about the model rather than the queue. Shared by the quality and
 * suite benchmarks.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import type { TaskRow } from '../../scripts/eval-suites';

export const root = path.resolve(import.meta.dirname, '..', '..');
export const python = path.join(root, '.venv', 'bin', 'python');
export const baseModel = { id: 'smollm2-135m-instruct', path: path.join(root, '.data', 'models', 'smollm2-135m-instruct') };

// No hub access at run time: every file the worker reads is local.
export const workerEnvironment = { ...process.env, HF_HUB_OFFLINE: '1', HF_DATASETS_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1', TOKENIZERS_PARALLELISM: 'false' };

export interface EvalResult {
  subject: string; task: string; correct: number; total: number; accuracy: number; stderr: number;
  accNorm: number; accNormStderr: number; macroF1: number | null; durationSeconds: number;
}

/** Runs one worker job at nice 5 and returns its events; a failed job raises with the worker's own failure message. */
export function runWorker(specPath: string): Array<Record<string, any>> {
  const started = Date.now();
  const completed = spawnSync('nice', ['-n', '5', python, '-m', 'worker', 'run', '--spec', specPath], {
    cwd: path.join(root, 'gpu-runner'), env: workerEnvironment, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024,
  });
  const events = completed.stdout.split('\n').filter((line) => line.trim()).map((line) => JSON.parse(line) as Record<string, any>);
  const failed = events.find((event) => event.type === 'failed');
  if (completed.status !== 0 || failed) throw new Error(`worker job ${specPath} failed (exit ${completed.status}): ${failed?.message ?? completed.stderr.slice(-2000)}`);
  process.stderr.write(`${path.basename(path.dirname(specPath))}: ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  return events;
}

export function summaryOf(events: Array<Record<string, any>>): Record<string, any> {
  return events.find((event) => event.type === 'finished')!.summary;
}

/**
 * Computes chance accuracy (mean of 1 / choices) and the share of the most frequent gold choice text.
 * The majority share is a baseline only where every item offers the same choices (PubMedQA,
 * PhraseBank, MMLU letters), not for ARC.
 */
export function trivialBaselines(rows: TaskRow[]) {
  const random = rows.reduce((sum, row) => sum + 1 / row.choices.length, 0) / rows.length;
  const counts = new Map<string, number>();
  for (const row of rows) counts.set(row.choices[row.gold]!, (counts.get(row.choices[row.gold]!) ?? 0) + 1);
  const [majorityAnswer, majorityCount] = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]!;
  return { random, majorityAnswer, majority: majorityCount / rows.length };
}
