/**
 * Training speed of the worker against a plain transformers Trainer + PEFT script, on
 * SmolLM2-135M-Instruct and PubMedQA, with the same examples, hyperparameters and epochs.
 * The two sides run as separate processes, alternating within one invocation (round 1:
 * baseline then worker, round 2: worker then baseline, …), so load from other processes
 * hits both. Each process reports its own peak resident memory.
 *
 *   bash scripts/prepare-base-model.sh   (once)
 *   nice -n 10 npx tsx bench/finetune-speed.ts [--examples 48] [--max-seq 512] [--batch 4] [--rounds 2] [--packing]
 *
 * Round r trains with seed 42 + r - 1 on both sides, so the rounds also show how far the
 * validation loss moves with the seed (shuffle order, dropout, LoRA initialisation,
 * validation split). Packing is off unless asked for, as in the product's defaults, so
 * both sides take the same number of optimizer steps over the same examples.
 * Tokens per second is non-padding training tokens over the wall time of the training loop:
 * for the worker from its first-step log event to its last progress event, for the baseline
 * the time inside trainer.train(). Prints a JSON record and writes it to
 * bench/results/finetune-speed-<date>.json.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { writeDemoData } from '../scripts/demo-data';

const root = path.resolve(import.meta.dirname, '..');
const { values } = parseArgs({
  options: {
    examples: { type: 'string', default: '48' },
    'max-seq': { type: 'string', default: '512' },
    batch: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '2' },
    'validation-fraction': { type: 'string', default: '0.125' },
    packing: { type: 'boolean', default: false },
  },
});

const python = path.join(root, '.venv', 'bin', 'python');
const gpuRunner = path.join(root, 'gpu-runner');
const modelDir = path.join(root, '.data', 'models', 'smollm2-135m-instruct');
const dir = path.join(root, '.data', 'bench-finetune-speed');

interface SideResult {
  side: 'baseline' | 'worker';
  round: number;
  tokensPerSecond: number;
  trainSeconds: number;
  trainTokens: number;
  steps: number;
  validationLoss: number | null;
  peakMemoryBytes: number;
}

function run(command: string, args: string[], cwd: string): string {
  // Both sides inherit this process's niceness, so neither gets more of a shared CPU.
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', env: { ...process.env, HF_HUB_OFFLINE: '1', PYTHONUNBUFFERED: '1' }, maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${result.status}: ${result.stderr.slice(-3000)}`);
  return result.stdout;
}

function runWorker(specPath: string, round: number): SideResult {
  const events = run(python, ['-m', 'worker', 'run', '--spec', specPath], gpuRunner).split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
  const start = events.find((event) => event.type === 'log' && String(event.message).startsWith('training '));
  const progress = events.filter((event) => event.type === 'progress');
  const finished = events.find((event) => event.type === 'finished');
  if (!start || progress.length === 0 || !finished) throw new Error(`the worker run is missing events: ${JSON.stringify(events.slice(-3))}`);
  const summary = finished.summary as Record<string, number | null>;
  const trainSeconds = (progress.at(-1)!.time as number) - (start.time as number);
  return {
    side: 'worker', round, trainSeconds, tokensPerSecond: summary.trainTokens! / trainSeconds, trainTokens: summary.trainTokens!, steps: summary.steps!,
    validationLoss: summary.validationLoss ?? null, peakMemoryBytes: summary.peakMemoryBytes!,
  };
}

function runBaseline(specPath: string, round: number): SideResult {
  const lines = run(python, [path.join(root, 'bench', 'trainer-baseline.py'), '--spec', specPath], gpuRunner).split('\n').filter((line) => line.startsWith('{'));
  const result = JSON.parse(lines.at(-1)!) as Omit<SideResult, 'round' | 'side'>;
  return { ...result, side: 'baseline', round };
}

const median = (numbers: number[]) => {
  const sorted = [...numbers].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

const mean = (numbers: (number | null)[]) => {
  const present = numbers.filter((value): value is number => value !== null);
  return present.length ? present.reduce((sum, value) => sum + value, 0) / present.length : null;
};

async function main() {
  await fs.access(path.join(modelDir, 'manifest.json')).catch(() => {
    throw new Error(`${modelDir} is missing; run bash scripts/prepare-base-model.sh first`);
  });
  await fs.rm(dir, { recursive: true, force: true });
  await fs.mkdir(dir, { recursive: true });
  const demo = await writeDemoData(path.join(dir, 'demo'));
  const examples = Number(values.examples);
  const lines = (await fs.readFile(demo.trainPath, 'utf8')).split('\n').filter(Boolean).slice(0, examples);
  const datasetPath = path.join(dir, 'data.jsonl');
  await fs.writeFile(datasetPath, lines.join('\n') + '\n');

  const hyperparameters = {
    rank: 16, alpha: 32, dropout: 0.05, targetModules: 'all-linear', learningRate: 2e-4, lrScheduler: 'linear', epochs: 1, maxSteps: null,
    batchSize: Number(values.batch), gradientAccumulation: 1, maxSeqLength: Number(values['max-seq']), packing: values.packing, warmupRatio: 0.03,
    validationFraction: Number(values['validation-fraction']),
  };
  const results: SideResult[] = [];
  for (let round = 1; round <= Number(values.rounds); round++) {
    const workDir = path.join(dir, `round-${round}`);
    await fs.mkdir(workDir, { recursive: true });
    const spec = {
      jobId: `finetune-speed-${round}`, kind: 'finetune', workDir, baseModel: { id: 'smollm2-135m-instruct', path: modelDir },
      finetune: { datasetPath, outputDir: path.join(workDir, 'adapter'), hyperparameters: { ...hyperparameters, seed: 42 + round - 1 } },
    };
    const specPath = path.join(workDir, 'spec.json');
    await fs.writeFile(specPath, JSON.stringify(spec));
    const order = round % 2 === 1 ? [runBaseline, runWorker] : [runWorker, runBaseline];
    for (const side of order) {
      const result = side(specPath, round);
      results.push(result);
      process.stderr.write(`${JSON.stringify(result)}\n`);
    }
  }

  const of = (side: SideResult['side']) => results.filter((result) => result.side === side);
  const perRound = [...new Set(results.map((result) => result.round))].map((round) => {
    const [baseline] = results.filter((result) => result.round === round && result.side === 'baseline');
    const [worker] = results.filter((result) => result.round === round && result.side === 'worker');
    return {
      round, ratio: worker!.tokensPerSecond / baseline!.tokensPerSecond, memoryRatio: worker!.peakMemoryBytes / baseline!.peakMemoryBytes,
      validationLossDifference: worker!.validationLoss !== null && baseline!.validationLoss !== null ? worker!.validationLoss - baseline!.validationLoss : null,
    };
  });
  const record = {
    date: new Date().toISOString(),
    machine: `${os.cpus()[0]?.model} (${os.cpus().length} logical CPUs), load average at the end ${os.loadavg().map((load) => load.toFixed(1)).join(' ')}`,
    command: `npx tsx bench/finetune-speed.ts --examples ${examples} --max-seq ${values['max-seq']} --batch ${values.batch} --rounds ${values.rounds}${values.packing ? ' --packing' : ''}`,
    hyperparameters,
    results,
    perRound,
    medianTokensPerSecond: { baseline: median(of('baseline').map((r) => r.tokensPerSecond)), worker: median(of('worker').map((r) => r.tokensPerSecond)) },
    medianRatio: median(perRound.map((round) => round.ratio)),
    meanValidationLoss: { baseline: mean(of('baseline').map((r) => r.validationLoss)), worker: mean(of('worker').map((r) => r.validationLoss)) },
  };
  console.log(JSON.stringify(record, null, 2));
  await fs.mkdir(path.join(root, 'bench', 'results'), { recursive: true });
  await fs.writeFile(path.join(root, 'bench', 'results', `finetune-speed-${record.date.slice(0, 10)}.json`), JSON.stringify(record, null, 2) + '\n');
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
