/** Steps shared by the quickstart seeding, the benchmarks and the integration tests; each goes through the public API. */
import fs from 'node:fs/promises';
import path from 'node:path';
import { announce, describeFile, describeFolder, putFiles } from '../cli/upload';
import type { Client } from '../lib/trpc-client';
import { finalizeUpload } from '../lib/upload-protocol';

export async function ensureUser(client: Client, input: { email: string; password: string; namespace: string }, options: { admin?: boolean } = {}) {
  try {
    await client.auth.signUp.mutate(input);
  } catch (error) {
    if ((error as { data?: { code?: string } }).data?.code !== 'CONFLICT') throw error;
  }
  return client.auth.issueToken.mutate({ email: input.email, password: input.password, name: 'seed', scopes: ['read', 'write', 'fine-tune', 'evaluate', ...(options.admin ? ['admin' as const] : [])], expiresInDays: 30 });
}

/**
 * Uploads a folder written by `python -m worker prepare-base` (or make-tiny) and registers it.
 * An `onnx/` subfolder (the playground's shared-base graph from `worker export-onnx
 * --lora-inputs`) is stored with it, and the app downloads it on first playground use.
 * Without one, the app queues a runner job that exports the graph, unless
 * `exportPlaygroundGraph` is false.
 */
export async function registerBaseModelFromFolder(client: Client, dir: string, id: string, displayName: string, options: { exportPlaygroundGraph?: boolean } = {}) {
  const manifest = JSON.parse(await fs.readFile(path.join(dir, 'manifest.json'), 'utf8'));
  const files = (await describeFolder(dir)).filter((file) => file.path !== 'manifest.json');
  const graphDir = path.join(dir, 'onnx');
  if (await fs.stat(graphDir).then((stat) => stat.isDirectory(), () => false)) {
    for (const file of await describeFolder(graphDir)) files.push({ ...file, path: `onnx/${file.path}` });
  }
  const begun = await client.baseModels.beginUpload.mutate({ files: files.map(announce) });
  await putFiles(files, begun.files);
  return finalizeUpload(() => client.baseModels.register.mutate({ uploadId: begun.uploadId, id, displayName, manifest, exportPlaygroundGraph: options.exportPlaygroundGraph ?? true }));
}

export async function registerTaskFromFile(client: Client, file: string, input: { id: string; displayName: string; description: string; domain: string }) {
  const described = await describeFile(file, path.basename(file));
  const itemCount = (await fs.readFile(file, 'utf8')).split('\n').filter((line) => line.trim()).length;
  const begun = await client.evals.beginTaskUpload.mutate({ file: announce(described) });
  await putFiles([described], begun.files);
  return finalizeUpload(() => client.evals.registerTask.mutate({ uploadId: begun.uploadId, ...input, itemCount }));
}

export async function uploadDataset(client: Client, file: string, name: string, baseModelId: string) {
  const described = await describeFile(file, path.basename(file));
  const begun = await client.datasets.beginUpload.mutate({ file: announce(described) });
  await putFiles([described], begun.files);
  return finalizeUpload(() => client.datasets.create.mutate({ uploadId: begun.uploadId, name, baseModelId }));
}

export const PUBMEDQA_TASK = {
  id: 'pubmedqa',
  displayName: 'PubMedQA (official test split, 500 items)',
  description: 'Yes/no/maybe answers to biomedical research questions from PubMed abstracts, scored by the log-likelihood of each answer. Answering "yes" every time scores 55.2%.',
  domain: 'medical',
};
