import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pubmedqaSplits, toJsonl } from '../../scripts/demo-data';
import { mmluTask } from '../../scripts/eval-suites';
import { registerTaskFromFile } from '../../scripts/seed-lib';
import { TINY_BASE_ID } from '../setup/env';
import { adminClient, newUser, runCli, startRunner, waitForJob, writeAdapterFolder, type RunnerProcess } from '../setup/helpers';

const PUBMEDQA_ITEMS = 8;
const ANATOMY_ITEMS = 6;

describe('evaluation suites through the real runner', () => {
  let user: Awaited<ReturnType<typeof newUser>>;
  let admin: Awaited<ReturnType<typeof adminClient>>;
  let runner: RunnerProcess;

  beforeAll(async () => {
    user = await newUser('suites');
    admin = await adminClient();
    runner = await startRunner('suites-runner');
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'suite-tasks-'));
    const pubmedqa = path.join(dir, 'suite-pubmedqa.jsonl');
    await fs.writeFile(pubmedqa, toJsonl((await pubmedqaSplits()).task.slice(0, PUBMEDQA_ITEMS)));
    await registerTaskFromFile(admin, pubmedqa, { id: 'suite-pubmedqa', displayName: 'PubMedQA (suite test)', description: 'first official test items', domain: 'medical-suite-test' });
    const anatomy = path.join(dir, 'suite-anatomy.jsonl');
    await fs.writeFile(anatomy, toJsonl((await mmluTask('anatomy')).slice(0, ANATOMY_ITEMS)));
    await registerTaskFromFile(admin, anatomy, { id: 'suite-anatomy', displayName: 'MMLU anatomy (suite test)', description: 'first test items', domain: 'medical-suite-test' });
  });
  afterAll(async () => {
    await runner?.stop();
  });

  it('versions a suite only when its settings change', async () => {
    const definition = {
      id: 'suite-test', displayName: 'Suite test', description: 'two small medical tasks', domain: 'medical-suite-test', seed: 7,
      tasks: [{ taskId: 'suite-pubmedqa', numFewshot: 0, limit: null }, { taskId: 'suite-anatomy', numFewshot: 1, limit: null }],
    };
    expect(await admin.evals.registerSuite.mutate(definition)).toEqual({ id: 'suite-test', version: 1 });
    expect(await admin.evals.registerSuite.mutate(definition)).toEqual({ id: 'suite-test', version: 1 });
    expect(await admin.evals.registerSuite.mutate({ ...definition, seed: 8 })).toEqual({ id: 'suite-test', version: 2 });

    const first = await user.client.evals.suite.query({ id: 'suite-test', version: 1 });
    expect(first.seed).toBe(7);
    expect(first.tasks).toEqual([
      { taskId: 'suite-pubmedqa', taskVersion: 1, numFewshot: 0, limit: null },
      { taskId: 'suite-anatomy', taskVersion: 1, numFewshot: 1, limit: null },
    ]);
    expect((await user.client.evals.suites.query()).find((s) => s.id === 'suite-test')?.version).toBe(2);
  });

  it('rejects a suite with an unknown task or too few items', async () => {
    const base = { id: 'suite-bad', displayName: 'Bad', description: '', domain: 'x', seed: 1 };
    await expect(admin.evals.registerSuite.mutate({ ...base, tasks: [{ taskId: 'no-such-task', numFewshot: 0, limit: null }] }))
      .rejects.toThrow(/benchmark task "no-such-task" not found; known: .*suite-anatomy/);
    await expect(user.client.evals.suite.query({ id: 'no-such-suite' }))
      .rejects.toThrow(/evaluation suite "no-such-suite" not found; known: .*suite-test/);
    await expect(admin.evals.registerSuite.mutate({ ...base, tasks: [{ taskId: 'suite-anatomy', numFewshot: 3, limit: 3 }] }))
      .rejects.toThrow(/numFewshot 3 needs a limit above it/);
    await expect(user.client.evals.registerSuite.mutate({ ...base, tasks: [{ taskId: 'suite-anatomy', numFewshot: 0, limit: null }] }))
      .rejects.toThrow();
  });

  it('scores every task of a suite and keeps each setting a separate result', async () => {
    const dir = await writeAdapterFolder({ rank: 4 });
    const published = runCli(['publish', dir, '--name', 'suite-adapter', '--base', TINY_BASE_ID, '--json'], user.token);
    expect(published.stderr).toBe('');

    const requested = await user.client.evals.requestSuite.mutate({ namespace: user.namespace, name: 'suite-adapter', suiteId: 'suite-test', suiteVersion: 1 });
    expect(requested.suite).toEqual({ id: 'suite-test', version: 1 });
    expect(requested.jobIds).toHaveLength(2);
    for (const jobId of requested.jobIds) {
      const job = await waitForJob(user.client, jobId, ['succeeded', 'failed', 'cancelled'], 300_000);
      expect(job.error).toBeNull();
      expect(job.state).toBe('succeeded');
    }

    const pubmedqa = await user.client.evals.leaderboard.query({ taskId: 'suite-pubmedqa', baseModelId: TINY_BASE_ID });
    const [entry] = pubmedqa.entries;
    expect(entry).toMatchObject({ adapter: `${user.namespace}/suite-adapter`, total: PUBMEDQA_ITEMS, numFewshot: 0, seed: 7, harnessVersion: '0.4.13', hardware: expect.any(String) });
    expect(entry!.accuracy).toBeCloseTo(entry!.correct / PUBMEDQA_ITEMS, 10);
    expect(entry!.accNorm).toBeGreaterThanOrEqual(0);
    expect(entry!.accNormStderr).toBeGreaterThanOrEqual(0);
    expect(entry!.durationSeconds).toBeGreaterThan(0);
    // PubMedQA is a classification task (yes, no, maybe on every item), so macro-F1 and its baselines are there.
    expect(entry!.macroF1).toBeGreaterThanOrEqual(0);
    expect(entry!.base?.macroF1).toBeGreaterThanOrEqual(0);
    expect(entry!.macroF1Difference).toBeCloseTo(entry!.macroF1! - entry!.base!.macroF1!, 10);
    expect(pubmedqa.task.baselines?.majority.macroF1).toBeGreaterThan(0);
    expect(pubmedqa.task.baselines?.randomMacroF1).toBeGreaterThan(0);

    const anatomy = await user.client.evals.leaderboard.query({ taskId: 'suite-anatomy', baseModelId: TINY_BASE_ID });
    expect(anatomy.entries[0]).toMatchObject({ total: ANATOMY_ITEMS, numFewshot: 1, seed: 7, harnessVersion: '0.4.13' });

    // Version 2 changes only the seed: its runs add results next to version 1's instead of replacing them.
    const again = await user.client.evals.requestSuite.mutate({ namespace: user.namespace, name: 'suite-adapter', suiteId: 'suite-test' });
    expect(again.suite.version).toBe(2);
    for (const jobId of again.jobIds) expect((await waitForJob(user.client, jobId, ['succeeded', 'failed', 'cancelled'], 300_000)).state).toBe('succeeded');
    const after = await user.client.evals.leaderboard.query({ taskId: 'suite-anatomy', baseModelId: TINY_BASE_ID });
    expect(after.baseScores.map((score) => score.seed).sort()).toEqual([7, 8]);
    expect(new Set(after.baseScores.map((score) => score.configHash)).size).toBe(2);
  });
});
