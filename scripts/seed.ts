/**
 * Seeds a running app for the quickstart: a demo user, the base model, the PubMedQA task,
 * a runner token, the demo data set and a first short fine-tune. Idempotent where it can be:
 * a second run reuses the user, base model and task.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { createClient } from '../lib/trpc-client';
import { writeDemoData } from './demo-data';
import { ensureUser, PUBMEDQA_TASK, registerBaseModelFromFolder, registerTaskFromFile, uploadDataset } from './seed-lib';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');

async function main() {
  const url = process.env.APP_URL ?? 'http://127.0.0.1:3000';
  const baseDir = process.env.BASE_MODEL_DIR ?? path.join(root, '.data', 'models', 'smollm2-135m-instruct');
  const baseId = process.env.BASE_MODEL_ID ?? 'smollm2-135m-instruct';
  const user = { email: process.env.DEMO_EMAIL ?? 'demo@example.com', password: process.env.DEMO_PASSWORD ?? 'demo-password', namespace: process.env.DEMO_NAMESPACE ?? 'demo' };

  const anonymous = createClient({ url });
  const { token } = await ensureUser(anonymous, user, { admin: true });
  const client = createClient({ url, token });

  const models = await client.baseModels.list.query();
  if (!models.some((m) => m.id === baseId)) {
    console.error(`registering base model ${baseId} from ${baseDir} (uploading its weights to S3)…`);
    await registerBaseModelFromFolder(client, baseDir, baseId, 'SmolLM2-135M-Instruct');
  }

  const demo = await writeDemoData(path.join(root, '.data', 'demo'));
  await registerTaskFromFile(client, demo.taskPath, PUBMEDQA_TASK);

  const runner = await client.runner.createToken.mutate({ name: 'quickstart runner' });
  await fs.writeFile(path.join(root, '.data', 'runner-token'), runner.token, { mode: 0o600 });

  const dataset = await uploadDataset(client, demo.trainPath, 'pubmedqa-train', baseId);
  const steps = Number(process.env.DEMO_MAX_STEPS ?? 10);
  const evalLimit = Number(process.env.DEMO_EVAL_LIMIT ?? 50);
  const job = await client.finetune.create.mutate({
    datasetVersionId: dataset.datasetVersionId, baseModelId: baseId, adapterName: 'pubmedqa-demo', domain: 'medical',
    description: 'SmolLM2-135M-Instruct adapted to PubMedQA yes/no/maybe questions (quickstart demo: a short run).',
    evalLimit,
    hyperparameters: { rank: 16, alpha: 32, dropout: 0.05, targetModules: 'all-linear', learningRate: 2e-4, epochs: 1, maxSteps: steps, batchSize: 2, gradientAccumulation: 1, maxSeqLength: 768, warmupRatio: 0.03, seed: 42 },
  });

  console.log(JSON.stringify({ user, token, jobId: job.jobId, datasetVersionId: dataset.datasetVersionId }));
}

main().catch((error: unknown) => {
  console.error(`seeding failed: ${(error as Error).message}`);
  process.exit(1);
});
