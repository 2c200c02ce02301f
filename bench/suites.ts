/**
 * Scores the medical, finance and general suites for SmolLM2-135M-Instruct and a PubMedQA LoRA
 * adapter. Every task of every suite in scripts/eval-suites.ts runs as one worker evaluate job
 * (lm_eval) that scores both models. Suite scores are the mean task accuracy, as the
 * leaderboard computes them.
 *
 *   npx tsx bench/suites.ts [--per-task 40] [--adapter DIR] [--train 200] [--max-seq 512] [--epochs 1]
 *
 * Without --adapter the script first trains the adapter through the worker with the product's
 * default LoRA settings, on the first --train PubMedQA items by PubMed id outside the official
 * test split. --per-task N scores N items of each task, chosen by a seeded shuffle with the
 * suite's seed and kept in file order (all items when a task has fewer): a plain prefix would
 * be biased, because the PhraseBank file runs in blocks of one label. Data comes from DATA_DIR
 * or a `shared/data` folder beside the checkout. Writes bench/results/suites-<date>.json.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SUITES, type TaskRow } from '../scripts/eval-suites';
import { pubmedqaSplits, toJsonl } from '../scripts/demo-data';
import { seededOrder } from '../server/formats/dataset-clean';
import { baseModel, root, runWorker, summaryOf, trivialBaselines, type EvalResult } from './lib/worker';

const { values } = parseArgs({
  options: {
    'per-task': { type: 'string', default: '40' }, adapter: { type: 'string' },
    train: { type: 'string', default: '200' }, 'max-seq': { type: 'string', default: '512' }, epochs: { type: 'string', default: '1' },
  },
});

/** Keeps `count` rows chosen by a seeded shuffle, in their original order. */
function sample(rows: TaskRow[], count: number, seed: number): TaskRow[] {
  if (rows.length <= count) return rows;
  const chosen = new Set(seededOrder(rows.length, seed).slice(0, count));
  return rows.filter((_, index) => chosen.has(index));
}

/** Mean task accuracy and its standard error, the tasks' errors taken as independent (as the leaderboard does). */
function suiteScore(results: EvalResult[]) {
  const n = results.length;
  return {
    score: results.reduce((sum, r) => sum + r.accuracy, 0) / n,
    stderr: Math.sqrt(results.reduce((sum, r) => sum + r.stderr ** 2, 0)) / n,
  };
}

async function trainAdapter(dir: string): Promise<{ adapterPath: string; training: Record<string, any> }> {
  const { train } = await pubmedqaSplits();
  const datasetPath = path.join(dir, 'pubmedqa-train.jsonl');
  await fs.writeFile(datasetPath, toJsonl(train.slice(0, Number(values.train))));
  const workDir = path.join(dir, 'lora');
  await fs.mkdir(workDir, { recursive: true });
  // The product's defaults for a new fine-tune (rank 16, alpha 32, lr 2e-4, batch 4, all linear layers).
  const hyperparameters = {
    rank: 16, alpha: 32, dropout: 0.05, targetModules: 'all-linear', learningRate: 2e-4, lrScheduler: 'linear',
    epochs: Number(values.epochs), maxSteps: null, batchSize: 4, gradientAccumulation: 1,
    maxSeqLength: Number(values['max-seq']), packing: false, warmupRatio: 0.03, seed: 42, validationFraction: 0, precision: 'fp32',
  };
  const adapterPath = path.join(workDir, 'adapter');
  const spec = { jobId: 'suites-lora', kind: 'finetune', workDir, baseModel, finetune: { datasetPath, outputDir: adapterPath, hyperparameters } };
  await fs.writeFile(path.join(workDir, 'spec.json'), JSON.stringify(spec));
  const training = summaryOf(runWorker(path.join(workDir, 'spec.json')));
  return { adapterPath, training: { ...training, hyperparameters, examples: Number(values.train) } };
}

async function main() {
  const dir = path.join(root, '.data', 'bench-suites');
  await fs.mkdir(dir, { recursive: true });
  const perTask = Number(values['per-task']);
  const started = Date.now();

  const { adapterPath, training } = values.adapter
    ? { adapterPath: path.resolve(values.adapter), training: null }
    : await trainAdapter(dir);

  const suites = [];
  for (const suite of SUITES) {
    const tasks: Array<{ id: string; items: number; of: number; results: EvalResult[] } & ReturnType<typeof trivialBaselines>> = [];
    for (const task of suite.tasks) {
      const all = await task.build();
      const rows = sample(all, perTask, suite.seed);
      const taskPath = path.join(dir, `${task.id}.jsonl`);
      await fs.writeFile(taskPath, toJsonl(rows));
      const workDir = path.join(dir, `eval-${task.id}`);
      await fs.mkdir(workDir, { recursive: true });
      const spec = {
        jobId: `suites-eval-${task.id}`, kind: 'evaluate', workDir, baseModel,
        evaluate: {
          task: { name: task.id.replaceAll('-', '_'), path: taskPath, limit: null, numFewshot: task.numFewshot, seed: suite.seed, fewshotPath: null },
          subjects: [{ key: 'base' }, { key: 'adapter', adapterPath }],
        },
      };
      await fs.writeFile(path.join(workDir, 'spec.json'), JSON.stringify(spec));
      const results = summaryOf(runWorker(path.join(workDir, 'spec.json'))).results as EvalResult[];
      tasks.push({ id: task.id, items: rows.length, of: all.length, ...trivialBaselines(rows), results });
    }
    const bySubject = (key: string) => tasks.map((task) => task.results.find((r) => r.subject === key)!);
    const base = suiteScore(bySubject('base'));
    const adapter = suiteScore(bySubject('adapter'));
    suites.push({ id: suite.id, base, adapter, gain: adapter.score - base.score, tasks });
    process.stderr.write(`${suite.id}: base ${(100 * base.score).toFixed(1)} ± ${(100 * base.stderr).toFixed(1)}, adapter ${(100 * adapter.score).toFixed(1)} ± ${(100 * adapter.stderr).toFixed(1)}\n`);
  }

  const record = {
    date: new Date().toISOString(),
    machine: `${os.cpus()[0]?.model} (${os.cpus().length} logical CPUs), load average at the end ${os.loadavg().map((load) => load.toFixed(1)).join(' ')}`,
    command: `npx tsx bench/suites.ts --per-task ${perTask}${values.adapter ? ` --adapter ${values.adapter}` : ` --train ${values.train} --max-seq ${values['max-seq']} --epochs ${values.epochs}`}`,
    wallSeconds: Math.round((Date.now() - started) / 1000),
    training,
    suites,
  };
  await fs.mkdir(path.join(root, 'bench', 'results'), { recursive: true });
  await fs.writeFile(path.join(root, 'bench', 'results', `suites-${record.date.slice(0, 10)}.json`), JSON.stringify(record, null, 2) + '\n');
  console.log(JSON.stringify(record, null, 2));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
