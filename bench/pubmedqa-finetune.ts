/**
 * The real run: SmolLM2-135M-Instruct fine-tuned through the product (app on PGlite,
 * SeaweedFS, one runner, the Python worker) on the 500 PubMedQA items outside the official
 * test split, then the base model and the adapter scored on the official test split.
 *
 *   S3_ENDPOINT=http://127.0.0.1:8533 npx next build   (the build fixes the S3 origin of its Content-Security-Policy)
 *   npx tsx bench/pubmedqa-finetune.ts [--epochs 1] [--eval-limit 200] [--max-seq 512] [--batch 4]
 *
 * Prints a JSON record and writes it to bench/results/pubmedqa-finetune-<date>.json.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createClient } from '../lib/trpc-client';
import { writeDemoData } from '../scripts/demo-data';
import { ensureUser, PUBMEDQA_TASK, registerBaseModelFromFolder, registerTaskFromFile, uploadDataset } from '../scripts/seed-lib';

const root = path.resolve(import.meta.dirname, '..');
const { values } = parseArgs({ options: { epochs: { type: 'string', default: '1' }, 'eval-limit': { type: 'string', default: '200' }, 'max-seq': { type: 'string', default: '512' }, batch: { type: 'string', default: '4' }, lr: { type: 'string', default: '0.0002' }, rank: { type: 'string', default: '16' } } });

const dir = path.join(root, '.data', 'bench');
const port = 3200;
const s3Port = 8533;
const url = `http://127.0.0.1:${port}`;
// The benchmark runs on the embedded PGlite database, as the quickstart does.
const { DATABASE_URL: _ignored, ...inherited } = process.env;
const env = {
  ...inherited, S3_ENDPOINT: `http://127.0.0.1:${s3Port}`, S3_BUCKET: 'bench', S3_ACCESS_KEY_ID: 'bench-key', S3_SECRET_ACCESS_KEY: 'bench-secret-key',
  PGLITE_DIR: path.join(dir, 'pglite'), NEXTAUTH_SECRET: 'bench-secret-not-for-production', NEXTAUTH_URL: url, HF_HUB_OFFLINE: '1', LOG_LEVEL: 'warn',
};

async function main() {
  await fs.rm(dir, { recursive: true, force: true });
  await fs.mkdir(dir, { recursive: true });
  execFileSync(path.join(root, 'scripts', 'seaweedfs.sh'), [path.join(dir, 'seaweedfs'), String(s3Port), env.S3_BUCKET, env.S3_ACCESS_KEY_ID, env.S3_SECRET_ACCESS_KEY], { stdio: 'ignore' });
  const app = spawn(path.join(root, 'node_modules', '.bin', 'next'), ['start', '-p', String(port), '-H', '127.0.0.1'], { env, stdio: 'ignore', detached: true, cwd: root });
  let runner: ReturnType<typeof spawn> | undefined;
  const stop = () => {
    for (const child of [runner, app]) if (child?.pid) try { process.kill(-child.pid, 'SIGINT'); } catch { /* already gone */ }
    execFileSync(path.join(root, 'scripts', 'stop-pid.sh'), [path.join(dir, 'seaweedfs', 'weed.pid')]);
  };
  process.on('SIGINT', () => { stop(); process.exit(130); });

  try {
    for (let i = 0; ; i++) {
      if ((await fetch(`${url}/api/health`).catch(() => null))?.ok) break;
      if (i > 120) throw new Error('the app did not start');
      await new Promise((r) => setTimeout(r, 500));
    }
    const { token } = await ensureUser(createClient({ url }), { email: 'bench@example.com', password: 'bench-password', namespace: 'bench' }, { admin: true });
    const client = createClient({ url, token });
    await registerBaseModelFromFolder(client, path.join(root, '.data', 'models', 'smollm2-135m-instruct'), 'smollm2-135m-instruct', 'SmolLM2-135M-Instruct', { exportPlaygroundGraph: false });
    const demo = await writeDemoData(path.join(dir, 'demo'));
    await registerTaskFromFile(client, demo.taskPath, PUBMEDQA_TASK);
    const dataset = await uploadDataset(client, demo.trainPath, 'pubmedqa-train', 'smollm2-135m-instruct');
    const runnerToken = (await client.runner.createToken.mutate({ name: 'bench' })).token;

    const evalLimit = values['eval-limit'] === 'all' ? null : Number(values['eval-limit']);
    const hyperparameters = {
      rank: Number(values.rank), alpha: 2 * Number(values.rank), dropout: 0.05, targetModules: 'all-linear' as const, learningRate: Number(values.lr), epochs: Number(values.epochs),
      maxSteps: null, batchSize: Number(values.batch), gradientAccumulation: 1, maxSeqLength: Number(values['max-seq']), warmupRatio: 0.03, seed: 42,
    };
    const started = Date.now();
    const { jobId } = await client.finetune.create.mutate({ datasetVersionId: dataset.datasetVersionId, baseModelId: 'smollm2-135m-instruct', adapterName: 'pubmedqa-bench', domain: 'medical', description: 'Benchmark run', evalLimit, hyperparameters });
    runner = spawn(process.execPath, ['--import', 'tsx', 'gpu-runner/src/main.ts'], { env: { ...env, APP_URL: url, RUNNER_TOKEN: runnerToken, RUNNER_WORK_DIR: path.join(dir, 'work'), RUNNER_CACHE_DIR: path.join(dir, 'cache') }, stdio: ['ignore', 'ignore', 'inherit'], detached: true, cwd: root });

    const wait = async (id: string) => {
      for (;;) {
        const job = await client.finetune.get.query({ jobId: id });
        if (['succeeded', 'failed', 'cancelled'].includes(job.state)) return job;
        const progress = job.progress as { step?: number; totalSteps?: number; loss?: number } | null;
        if (progress) process.stderr.write(`\r${job.kind} step ${progress.step}/${progress.totalSteps} loss ${progress.loss?.toFixed(3)}   `);
        await new Promise((r) => setTimeout(r, 10_000));
      }
    };
    const train = await wait(jobId);
    if (train.state !== 'succeeded') throw new Error(`fine-tune ${train.state}: ${JSON.stringify(train.error)}`);
    const evaluation = await wait(train.children[0]!.id);
    if (evaluation.state !== 'succeeded') throw new Error(`evaluation ${evaluation.state}: ${JSON.stringify(evaluation.error)}`);
    const board = await client.evals.leaderboard.query({ taskId: 'pubmedqa' });

    const record = {
      date: new Date().toISOString(), machine: `${os.cpus()[0]?.model} × ${os.cpus().length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`,
      dataset: { examples: dataset.report.examples, tokens: dataset.report.tokens }, hyperparameters, evalLimit,
      training: train.summary, evaluation: evaluation.summary, leaderboard: board, wallSecondsEndToEnd: (Date.now() - started) / 1000,
    };
    await fs.mkdir(path.join(root, 'bench', 'results'), { recursive: true });
    const out = path.join(root, 'bench', 'results', `pubmedqa-finetune-${record.date.slice(0, 10)}.json`);
    await fs.writeFile(out, JSON.stringify(record, null, 2));
    console.log(JSON.stringify(record, null, 2));
  } finally {
    stop();
  }
}

main().catch((error: unknown) => {
  console.error(`benchmark failed: ${(error as Error).message}`);
  process.exit(1);
});
