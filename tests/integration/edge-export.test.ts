import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { announce, describeFolder, putFiles } from '../../cli/upload';
import { finalizeUpload } from '../../lib/upload-protocol';
import { pubmedqaSplits, toJsonl } from '../../scripts/demo-data';
import { registerBaseModelFromFolder, registerTaskFromFile } from '../../scripts/seed-lib';
import { appUrl, testEnv, TINY_BASE_ID } from '../setup/env';
import { adminClient, newUser, runCli, startRunner, waitForJob, writeAdapterFolder, type RunnerProcess } from '../setup/helpers';

const TASK_ITEMS = 4;
const DOMAIN = 'edge-export-test';
// Float32 ONNX Runtime against float32 PyTorch on the same CPU differ only by the order of
// operations (about 1e-6 on the tiny model's logits).
const FP32_LOGIT_TOLERANCE = 1e-3;

async function fetchBytes(url: string): Promise<Buffer> {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  return Buffer.from(await response.arrayBuffer());
}

describe('edge export through the real runner', () => {
  let user: Awaited<ReturnType<typeof newUser>>;
  let runner: RunnerProcess;
  const adapterName = 'edge-notes';

  beforeAll(async () => {
    user = await newUser('edge');
    const admin = await adminClient();
    const taskFile = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'edge-task-')), 'edge-pubmedqa.jsonl');
    await fs.writeFile(taskFile, toJsonl((await pubmedqaSplits()).task.slice(0, TASK_ITEMS)));
    await registerTaskFromFile(admin, taskFile, { id: 'edge-pubmedqa', displayName: 'PubMedQA (edge test)', description: 'first official test items', domain: DOMAIN });

    const dir = await writeAdapterFolder({ rank: 4, targets: ['q_proj', 'v_proj', 'down_proj'] });
    const files = await describeFolder(dir);
    const begun = await user.client.adapters.beginUpload.mutate({ files: files.map(announce) });
    await putFiles(files, begun.files);
    await finalizeUpload(() => user.client.adapters.publish.mutate({ uploadId: begun.uploadId, name: adapterName, baseModelId: TINY_BASE_ID, domain: DOMAIN }));
    runner = await startRunner('edge-runner');
  });
  afterAll(async () => {
    await runner?.stop();
  });

  it('rejects an export request from outside the namespace', async () => {
    const outsider = await newUser('edge-outsider');
    await expect(outsider.client.edge.requestExport.mutate({ namespace: user.namespace, name: adapterName })).rejects.toThrow(/FORBIDDEN|not allowed|role/i);
  });

  it('exports, stores and reports a version', async () => {
    const ref = { namespace: user.namespace, name: adapterName, version: 1 };
    expect((await user.client.edge.get.query(ref)).bundle).toBeNull();
    await expect(user.client.edge.downloadUrl.mutate({ ...ref, path: 'model.onnx' })).rejects.toThrow(/request an export first/);

    const { jobId } = await user.client.edge.requestExport.mutate(ref);
    const again = runCli(['edge-export', `${user.namespace}/${adapterName}@1`], user.token);
    expect(again.status).not.toBe(0);
    expect(again.stderr).toMatch(/already queued or running/);

    const job = await waitForJob(user.client, jobId, ['succeeded', 'failed', 'cancelled'], 300_000);
    expect(job.error, JSON.stringify(job.error)).toBeNull();
    expect(job.state).toBe('succeeded');
    expect(job.kind).toBe('export');

    const edge = await user.client.edge.get.query(ref);
    expect(edge.latestJob?.id).toBe(jobId);
    const bundle = edge.bundle!;
    const paths = bundle.files.map((file) => file.path).sort();
    expect(paths).toEqual(expect.arrayContaining(['manifest.json', 'model.int8.onnx', 'model.onnx', 'tokenizer.json', 'tokenizer_config.json']));

    // The stored manifest is the one in the bundle, and it lists every other file with its checksum.
    const manifestFile = await user.client.edge.downloadUrl.mutate({ ...ref, path: 'manifest.json' });
    const manifest = JSON.parse((await fetchBytes(manifestFile.url)).toString('utf8'));
    expect(manifest).toEqual(bundle.manifest);
    expect(manifest.formatVersion).toBe(1);
    expect(manifest.adapter).toMatchObject({ rank: 4, targetModules: ['down_proj', 'q_proj', 'v_proj'] });
    expect(manifest.variants.map((variant: { name: string }) => variant.name)).toEqual(['merged', 'merged-int8']);
    for (const file of bundle.files.filter((entry) => entry.path !== 'manifest.json')) {
      expect(manifest.files).toContainEqual({ path: file.path, size: file.size, sha256: file.sha256 });
    }
    const int8 = await user.client.edge.downloadUrl.mutate({ ...ref, path: 'model.int8.onnx' });
    const bytes = await fetchBytes(int8.url);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(int8.sha256);
    expect(bytes.length).toBe(int8.size);

    const report = bundle.report!;
    expect(report.runtime).toMatch(/^onnxruntime-node /);
    expect(report.prompts).toBeGreaterThan(0);
    expect(report.task).toEqual({ id: 'edge-pubmedqa', items: TASK_ITEMS });
    const [merged, quantized] = report.variants;
    expect(merged!.name).toBe('merged');
    expect(merged!.maxAbsLogitDiff).toBeLessThan(FP32_LOGIT_TOLERANCE);
    expect(merged!.top1Agreement).toBe(1);
    expect(merged!.taskAccuracy).toBe(report.pytorch.taskAccuracy);
    expect(quantized!.name).toBe('merged-int8');
    expect(quantized!.maxAbsLogitDiff).toBeGreaterThan(0);
    expect(quantized!.sizeBytes).toBe(int8.size);
    expect(quantized!.sizeBytes).toBeLessThan(merged!.sizeBytes / 2);
    for (const variant of report.variants) {
      expect(variant.msPerToken).toBeGreaterThan(0);
      expect(variant.peakMemoryBytes).toBeGreaterThan(variant.sizeBytes);
      expect(variant.taskAccuracy).not.toBeNull();
    }
    expect(report.int8TaskAgreement).toBeGreaterThanOrEqual(0);
    expect(report.pytorch.msPerToken).toBeGreaterThan(0);

    // The version page renders the report and the bundle's files on the server.
    const html = await (await fetch(`${appUrl}/${user.namespace}/${adapterName}?version=1`)).text();
    expect(html).toContain('data-testid="edge-report"');
    expect(html).toContain('merged-int8');
    expect(html).toContain('model.int8.onnx');
  });

  it('exports a base graph the playground runs', async () => {
    // A base model of its own without onnx/ files, so registering it queues the graph export
    // and the playground can only run from what the job stores.
    const admin = await adminClient();
    const baseId = `tiny-graph-${Date.now().toString(36)}`;
    const registered = await registerBaseModelFromFolder(admin, path.resolve(testEnv.TINY_MODEL_DIR), baseId, 'Tiny random Llama (graph export test)');
    expect('graphJobId' in registered).toBe(true);
    const graphJobId = (registered as { graphJobId: string | null }).graphJobId;
    expect(graphJobId).not.toBeNull();
    await expect(admin.edge.requestBaseExport.mutate({ baseModelId: baseId })).rejects.toThrow(/already queued or running/);
    await expect(user.client.edge.requestBaseExport.mutate({ baseModelId: baseId })).rejects.toThrow(/FORBIDDEN|admin/i);

    const adapter = await writeAdapterFolder({ rank: 4, targets: ['q_proj', 'v_proj'] });
    expect(runCli(['publish', adapter, '--name', 'graph-play', '--base', baseId], user.token).status).toBe(0);

    const job = await waitForJob(admin, graphJobId!, ['succeeded', 'failed', 'cancelled'], 300_000);
    expect(job.error, JSON.stringify(job.error)).toBeNull();
    expect(job.state).toBe('succeeded');

    const response = await fetch(`${appUrl}/api/playground`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${user.token}` },
      body: JSON.stringify({ namespace: user.namespace, name: 'graph-play', prompt: 'Hi', temperature: 0, maxTokens: 3 }),
    });
    const text = await response.text();
    expect(response.status, text).toBe(200);
    const stream = text.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { type: string; column?: string; baseModelId?: string });
    expect(stream[0]).toMatchObject({ type: 'start', baseModelId: baseId });
    expect(stream.at(-1)).toEqual({ type: 'end' });
    expect(stream.filter((line) => line.type === 'token' && line.column === 'adapter').length).toBeGreaterThan(0);

    // The graph is stored with the base model, not as an adapter's edge bundle.
    expect((await user.client.edge.get.query({ namespace: user.namespace, name: 'graph-play' })).bundle).toBeNull();
  });
});
