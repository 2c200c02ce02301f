import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toJsonl } from '../../scripts/demo-data';
import { uploadDataset } from '../../scripts/seed-lib';
import { TINY_BASE_ID } from '../setup/env';
import { newUser, runCli, runPython, startRunner, tinyHyperparameters, waitFor, waitForJob, writeAdapterFolder, type RunnerProcess } from '../setup/helpers';

/** Checks with the real PEFT that a pulled adapter loads on the tiny base and has non-zero lora_B weights. */
const LOAD_ADAPTER = `
import sys, torch
from transformers import AutoModelForCausalLM
from peft import PeftModel
base = AutoModelForCausalLM.from_pretrained(sys.argv[1])
model = PeftModel.from_pretrained(base, sys.argv[2])
b = [p for n, p in model.named_parameters() if 'lora_B' in n]
print(len(b), sum(float(t.abs().sum()) for t in b))
`;

describe('publish, fine-tune, evaluate and rank end to end', () => {
  let user: Awaited<ReturnType<typeof newUser>>;
  let runner: RunnerProcess;

  beforeAll(async () => {
    user = await newUser('flow');
    runner = await startRunner('flow-runner');
  });
  afterAll(async () => {
    await runner?.stop();
  });

  it('publishes an adapter folder with the CLI and pulls it back', async () => {
    const dir = await writeAdapterFolder({ rank: 4 });
    const published = runCli(['publish', dir, '--name', 'hand-made', '--base', TINY_BASE_ID, '--domain', 'medical', '--description', 'hand-built test adapter', '--json'], user.token);
    expect(published.stderr).toBe('');
    expect(JSON.parse(published.stdout)).toMatchObject({ version: 1, namespace: user.namespace, name: 'hand-made' });

    const again = runCli(['publish', dir, '--name', 'hand-made', '--base', TINY_BASE_ID, '--json'], user.token);
    expect(JSON.parse(again.stdout).version).toBe(2);

    const page = await user.client.adapters.get.query({ namespace: user.namespace, name: 'hand-made', version: 1 });
    expect(page.files.map((f) => f.path)).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors']);
    expect(page.version.configSummary).toMatchObject({ rank: 4, alpha: 8, peftType: 'LORA' });

    const out = await fs.mkdtemp(path.join(os.tmpdir(), 'pulled-'));
    const pulled = runCli(['pull', `${user.namespace}/hand-made@1`, '--out', out, '--json'], user.token);
    expect(pulled.status).toBe(0);
    expect(await fs.readFile(path.join(out, 'adapter_model.safetensors'))).toEqual(await fs.readFile(path.join(dir, 'adapter_model.safetensors')));

    const search = await user.client.adapters.search.query({ query: 'hand-made', domain: 'medical' });
    expect(search.items.map((a) => `${a.namespace}/${a.name}`)).toContain(`${user.namespace}/hand-made`);
    // Three files pulled by one user on one day count as one download, and so does a second pull.
    const after = await user.client.adapters.get.query({ namespace: user.namespace, name: 'hand-made' });
    expect(after.downloads).toBe(1);
    expect(runCli(['pull', `${user.namespace}/hand-made@1`, '--out', out], user.token).status).toBe(0);
    expect((await user.client.adapters.get.query({ namespace: user.namespace, name: 'hand-made' })).downloads).toBe(1);

    const liked = await user.client.adapters.like.mutate({ namespace: user.namespace, name: 'hand-made', liked: true });
    expect(liked.likes).toBe(1);
    expect((await user.client.adapters.like.mutate({ namespace: user.namespace, name: 'hand-made', liked: true })).likes).toBe(1);
    expect((await user.client.adapters.like.mutate({ namespace: user.namespace, name: 'hand-made', liked: false })).likes).toBe(0);
  });

  it('fine-tunes, publishes with lineage, evaluates and ranks', async () => {
    const train = (await fs.readFile('.test-data/demo/pubmedqa-train.jsonl', 'utf8')).split('\n').filter(Boolean).slice(0, 24).map((l) => JSON.parse(l));
    const file = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'data-')), 'pubmedqa-small.jsonl');
    await fs.writeFile(file, toJsonl(train));
    const dataset = await uploadDataset(user.client, file, 'pubmedqa-small', TINY_BASE_ID);
    expect(dataset.report.valid).toBe(true);
    expect(dataset.report.examples).toBe(24);
    expect(dataset.report.tokens?.prompt?.max).toBeGreaterThan(50);

    // The preflight checks options against the stored tiny-llama architecture (hidden 32,
    // k_proj 16×32, 2048 positions) and rejects them before any job is queued.
    const createWith = (overrides: Parameters<typeof tinyHyperparameters>[0]) => user.client.finetune.create.mutate({
      datasetVersionId: dataset.datasetVersionId, baseModelId: TINY_BASE_ID, adapterName: 'preflight-rejected', hyperparameters: tinyHyperparameters(overrides),
    });
    await expect(createWith({ rank: 32, alpha: 64 })).rejects.toThrow(/rank 32 exceeds the smaller dimension .*k_proj \(16×32\).*set rank to at most 16/);
    await expect(createWith({ maxSeqLength: 4096 })).rejects.toThrow(/maxSeqLength 4096 exceeds the context of base model tiny-llama \(2048 tokens.*set maxSeqLength to at most 2048/);
    await expect(createWith({ targetModules: ['q_proj', 'query_key_value'] })).rejects.toThrow(/"query_key_value" matches no module of base model tiny-llama/);
    const queued = await user.client.finetune.list.query();
    expect(queued.filter((job) => (job.params as { adapterName?: string }).adapterName === 'preflight-rejected')).toEqual([]);

    const created = runCli(['finetune', 'create', '--dataset', String(dataset.datasetVersionId), '--base', TINY_BASE_ID, '--name', 'pubmedqa-tiny',
      '--domain', 'medical', '--rank', '8', '--alpha', '16', '--lr', '0.01', '--batch', '4', '--max-seq', '768', '--max-steps', '6', '--eval-limit', '20', '--json'], user.token);
    expect(created.stderr).toBe('');
    const { jobId } = JSON.parse(created.stdout) as { jobId: string };

    const job = await waitForJob(user.client, jobId, ['succeeded', 'failed', 'cancelled']);
    expect(job.error).toBeNull();
    expect(job.state).toBe('succeeded');
    expect(job.lossCurve.length).toBe(6);
    expect(job.result).toMatchObject({ namespace: user.namespace, name: 'pubmedqa-tiny', version: 1 });

    const page = await user.client.adapters.get.query({ namespace: user.namespace, name: 'pubmedqa-tiny' });
    expect(page.version.lineage).toMatchObject({ jobId, baseModelId: TINY_BASE_ID, dataset: { sha256: expect.stringMatching(/^[0-9a-f]{64}$/) }, hyperparameters: { rank: 8, alpha: 16 } });
    expect((page.version.lineage as { versions: Record<string, string> }).versions).toHaveProperty('torch');
    expect(page.version.configSummary).toMatchObject({ rank: 8 });

    const evaluation = await waitFor('the automatic evaluation job', async () => {
      const parent = await user.client.finetune.get.query({ jobId });
      return parent.children[0];
    });
    const evalJob = await waitForJob(user.client, evaluation.id, ['succeeded', 'failed', 'cancelled']);
    expect(evalJob.error).toBeNull();
    expect(Number(evalJob.summary?.wallSeconds)).toBeGreaterThan(0);

    const board = await user.client.evals.leaderboard.query({ taskId: 'pubmedqa', baseModelId: TINY_BASE_ID });
    // The test task contains the first 40 official test items: 20 labelled "yes", 15 "no" and 5 "maybe".
    // Always "yes" has F1 2(0.5)/(1 + 0.5) for "yes" and 0 for the other two classes.
    const randomF1 = [20, 15, 5].map((count) => (2 * (count / 40) * (1 / 3)) / (count / 40 + 1 / 3));
    expect(board.task.baselines).toEqual({
      random: expect.closeTo(1 / 3, 10),
      majority: { answer: 'yes', accuracy: 20 / 40, macroF1: expect.closeTo(2 / 3 / 3, 10) },
      randomMacroF1: expect.closeTo(randomF1.reduce((a, b) => a + b) / 3, 10),
    });
    const entry = board.entries.find((e) => e.adapter === `${user.namespace}/pubmedqa-tiny`);
    expect(entry).toMatchObject({ total: 20, base: { total: 20 } });
    expect(entry!.correct).toBeGreaterThanOrEqual(0);
    expect(entry!.difference).toBeCloseTo(entry!.accuracy - entry!.base!.accuracy, 10);

    const human = runCli(['leaderboard', 'pubmedqa'], user.token);
    expect(human.stdout).toContain(`${user.namespace}/pubmedqa-tiny@1`);

    const out = await fs.mkdtemp(path.join(os.tmpdir(), 'pulled-'));
    expect(runCli(['pull', `${user.namespace}/pubmedqa-tiny`, '--out', out], user.token).status).toBe(0);
    const loaded = runPython(LOAD_ADAPTER, [path.resolve('.test-data/tiny-llama'), out]);
    expect(loaded.stderr.split('\n').filter((l) => /Error|Traceback/.test(l))).toEqual([]);
    const [pairs, magnitude] = loaded.stdout.trim().split(' ').map(Number);
    expect(pairs).toBeGreaterThan(0);
    expect(magnitude).toBeGreaterThan(0);
  });

  it('evaluates a published version on request and reuses the base score', async () => {
    const created = runCli(['eval', `${user.namespace}/hand-made@1`, '--task', 'pubmedqa', '--limit', '20', '--json'], user.token);
    const { jobId } = JSON.parse(created.stdout) as { jobId: string };
    const job = await waitForJob(user.client, jobId, ['succeeded', 'failed', 'cancelled']);
    expect(job.state).toBe('succeeded');
    expect((job.params as { subjects: { key: string }[] }).subjects.map((s) => s.key)).toEqual([expect.stringMatching(/^adapter-version:/)]);
  });

  it('keeps the full run ranked when another user requests a quick one', async () => {
    const stranger = await newUser('quick');
    const { jobId } = await stranger.client.evals.request.mutate({ namespace: user.namespace, name: 'pubmedqa-tiny', taskId: 'pubmedqa', limit: 5 });
    // The requester owns the job, so it can follow it; the adapter's owner does not see it.
    const job = await waitForJob(stranger.client, jobId, ['succeeded', 'failed', 'cancelled']);
    expect(job.state).toBe('succeeded');
    await expect(user.client.finetune.get.query({ jobId })).rejects.toThrow(/not found/);

    const board = await user.client.evals.leaderboard.query({ taskId: 'pubmedqa', baseModelId: TINY_BASE_ID });
    expect(board.entries.find((e) => e.adapter === `${user.namespace}/pubmedqa-tiny`)?.total).toBe(20);
  });
});
