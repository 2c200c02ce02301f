/**
 * Fine-tuning quality of four models: the base model, a PubMedQA LoRA adapter trained without
 * and with 20% general instruction data mixed in, and a full fine-tune of the same model on the
 * same tokenized examples. Each is scored on medical and general benchmarks by the worker's
 * evaluate job (lm_eval), as the leaderboard scores them.
 *
 *   npx tsx bench/quality.ts [--train 24] [--max-seq 384] [--epochs 1] [--pubmedqa-items 40] [--mmlu-per-subject 5] [--arc-items 40] [--full-lr 2e-5]
 *
 * Data comes from DATA_DIR or a `shared/data` folder beside the checkout (scripts/demo-data.ts).
 * The worker runs directly (`python -m worker run --spec`), without the app or S3, because
 * the figures are about the model, not the queue. The mixed data set is built with the
 * product's mixGeneral and its bundled Self-Instruct seed set, as the server's derive step does.
 * The defaults are the CPU-sized run of docs/benchmarks.md. Writes bench/results/quality-<date>.json.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { arcTask, mmluTask, type TaskRow } from '../scripts/eval-suites';
import { pubmedqaSplits, toJsonl } from '../scripts/demo-data';
import generalSet from '../server/data/self-instruct-seed.json';
import { mixGeneral } from '../server/formats/dataset-mix';
import type { Example } from '../server/formats/dataset-file';
import { baseModel, python, root, runWorker, summaryOf, trivialBaselines, workerEnvironment as environment, type EvalResult } from './lib/worker';

const MEDICAL_MMLU = ['anatomy', 'clinical_knowledge', 'college_biology', 'college_medicine', 'medical_genetics', 'professional_medicine'];
const MIX_RATIO = 0.2;
const MIX_SEED = 42;

const { values } = parseArgs({
  options: {
    train: { type: 'string', default: '24' }, 'max-seq': { type: 'string', default: '384' }, epochs: { type: 'string', default: '1' },
    batch: { type: 'string', default: '4' }, lr: { type: 'string', default: '0.0002' }, 'full-lr': { type: 'string', default: '2e-5' },
    'pubmedqa-items': { type: 'string', default: '40' }, 'mmlu-per-subject': { type: 'string', default: '5' }, 'arc-items': { type: 'string', default: '40' },
  },
});

async function main() {
  const dir = path.join(root, '.data', 'bench-quality');
  await fs.rm(dir, { recursive: true, force: true });
  await fs.mkdir(dir, { recursive: true });
  const trainCount = Number(values.train);

  // Training data: the first items by PubMed id of the 500 outside the official test split.
  const { train, task } = await pubmedqaSplits();
  const domain = train.slice(0, trainCount) as Example[];
  const mixed = mixGeneral(domain, 'prompt-completion', generalSet.examples as Example[], MIX_RATIO, MIX_SEED);
  const data = { domain: path.join(dir, 'pubmedqa-train.jsonl'), mixed: path.join(dir, 'pubmedqa-train-mixed.jsonl') };
  await fs.writeFile(data.domain, toJsonl(domain));
  await fs.writeFile(data.mixed, toJsonl(mixed.examples));

  // Evaluation items: fixed prefixes (PubMedQA by id, MMLU and ARC by file order), the same for every model.
  const mmluRows: TaskRow[] = [];
  for (const subject of MEDICAL_MMLU) mmluRows.push(...(await mmluTask(subject)).slice(0, Number(values['mmlu-per-subject'])));
  const tasks = [
    { name: 'pubmedqa', kind: 'medical', rows: task.slice(0, Number(values['pubmedqa-items'])) },
    { name: 'mmlu_medical', kind: 'medical', rows: mmluRows },
    { name: 'arc_easy', kind: 'general', rows: (await arcTask('easy')).slice(0, Number(values['arc-items'])) },
  ].filter((entry) => entry.rows.length > 0);
  for (const entry of tasks) await fs.writeFile(path.join(dir, `${entry.name}.jsonl`), toJsonl(entry.rows));

  const hyperparameters = {
    rank: 16, alpha: 32, dropout: 0.05, targetModules: 'all-linear', learningRate: Number(values.lr), lrScheduler: 'linear',
    epochs: Number(values.epochs), maxSteps: null, batchSize: Number(values.batch), gradientAccumulation: 1,
    maxSeqLength: Number(values['max-seq']), packing: false, warmupRatio: 0.03, seed: 42, validationFraction: 0, precision: 'fp32',
  };

  // The two LoRA runs through the worker, with the same hyperparameters.
  const trainings: Record<string, Record<string, any>> = {};
  for (const [name, datasetPath] of [['lora', data.domain], ['lora-mix', data.mixed]] as const) {
    const workDir = path.join(dir, name);
    await fs.mkdir(workDir, { recursive: true });
    const spec = { jobId: `quality-${name}`, kind: 'finetune', workDir, baseModel, finetune: { datasetPath, outputDir: path.join(workDir, 'adapter'), hyperparameters } };
    await fs.writeFile(path.join(workDir, 'spec.json'), JSON.stringify(spec));
    trainings[name] = summaryOf(runWorker(path.join(workDir, 'spec.json')));
  }

  // The full fine-tune reads the LoRA spec of the unmixed run, so its examples and order are the same.
  const fullDir = path.join(dir, 'full');
  const fullStarted = Date.now();
  const full = spawnSync('nice', ['-n', '5', python, path.join(root, 'bench', 'full-finetune.py'), '--spec', path.join(dir, 'lora', 'spec.json'), '--learning-rate', values['full-lr']!, '--out', path.join(fullDir, 'model')], { cwd: root, env: environment, encoding: 'utf8' });
  if (full.status !== 0) throw new Error(`bench/full-finetune.py failed (exit ${full.status}): ${full.stderr.slice(-2000)}`);
  trainings.full = JSON.parse(full.stdout.trim().split('\n').pop()!);
  process.stderr.write(`full: ${((Date.now() - fullStarted) / 1000).toFixed(0)} s\n`);

  // Evaluation: base and both adapters in one job per task (one model load), the full model in another.
  const evaluations: EvalResult[] = [];
  for (const entry of tasks) {
    const taskSpec = { name: entry.name, path: path.join(dir, `${entry.name}.jsonl`), limit: null, numFewshot: 0, seed: 1234, fewshotPath: null };
    const jobs = [
      { key: 'base-and-adapters', baseModel, subjects: [{ key: 'base' }, { key: 'lora', adapterPath: path.join(dir, 'lora', 'adapter') }, { key: 'lora-mix', adapterPath: path.join(dir, 'lora-mix', 'adapter') }] },
      { key: 'full', baseModel: { id: 'smollm2-135m-instruct-full', path: path.join(fullDir, 'model') }, subjects: [{ key: 'full' }] },
    ];
    for (const job of jobs) {
      const workDir = path.join(dir, `eval-${entry.name}-${job.key}`);
      await fs.mkdir(workDir, { recursive: true });
      const spec = { jobId: `quality-eval-${entry.name}-${job.key}`, kind: 'evaluate', workDir, baseModel: job.baseModel, evaluate: { task: taskSpec, subjects: job.subjects } };
      await fs.writeFile(path.join(workDir, 'spec.json'), JSON.stringify(spec));
      evaluations.push(...(summaryOf(runWorker(path.join(workDir, 'spec.json'))).results as EvalResult[]));
    }
  }

  const record = {
    date: new Date().toISOString(),
    machine: `${os.cpus()[0]?.model} (${os.cpus().length} logical CPUs), load average at the end ${os.loadavg().map((load) => load.toFixed(1)).join(' ')}`,
    command: `npx tsx bench/quality.ts --train ${trainCount} --max-seq ${values['max-seq']} --epochs ${values.epochs} --pubmedqa-items ${values['pubmedqa-items']} --mmlu-per-subject ${values['mmlu-per-subject']} --arc-items ${values['arc-items']} --full-lr ${values['full-lr']}`,
    data: {
      training: `the first ${domain.length} PubMedQA PQA-L items by PubMed id outside the official test split, prompt/completion`,
      mix: { source: 'bundled:self-instruct-seed', ratio: MIX_RATIO, seed: MIX_SEED, added: mixed.count, requested: mixed.requested, examples: mixed.examples.length },
      tasks: tasks.map((entry) => ({ name: entry.name, kind: entry.kind, items: entry.rows.length, firstId: entry.rows[0]!.id, lastId: entry.rows.at(-1)!.id, ...trivialBaselines(entry.rows) })),
    },
    hyperparameters: { lora: hyperparameters, fullLearningRate: Number(values['full-lr']) },
    trainings,
    evaluations,
  };
  console.log(JSON.stringify(record, null, 2));
  await fs.mkdir(path.join(root, 'bench', 'results'), { recursive: true });
  await fs.writeFile(path.join(root, 'bench', 'results', `quality-${record.date.slice(0, 10)}.json`), JSON.stringify(record, null, 2) + '\n');
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
