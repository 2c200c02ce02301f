import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evalResults } from '@/drizzle/schema';
import { toJsonl } from '../../scripts/demo-data';
import { uploadDataset } from '../../scripts/seed-lib';
import { appUrl, TINY_BASE_ID } from '../setup/env';
import { adminClient, newUser, runCli, startRunner, tinyHyperparameters, waitForJob, type RunnerProcess } from '../setup/helpers';
import { GENERAL_SUITE, seedResult, seedSuites, seedVersion, taskRows, type SeededBoard } from '../setup/leaderboard-seed';

const tag = `int${randomUUID().slice(0, 4)}`;
const MODEL_INDEX = {
  'model-index': [{ name: 'quick', results: [{ task: { type: 'text-classification' }, dataset: { name: 'lb domain', type: 'lb' }, metrics: [{ type: 'accuracy', value: 0.99 }] }] }],
};

describe('suite leaderboards on seeded results', () => {
  let user: Awaited<ReturnType<typeof newUser>>;
  let board: SeededBoard;
  const ids: Record<string, number> = {};

  beforeAll(async () => {
    user = await newUser('lb');
    board = await seedSuites(await adminClient(), tag, user.namespace);
    ids.a = await seedVersion(board, { name: 'lb-a', rank: 8, trainableParameters: 2000, downloads: 5 });
    ids.b = await seedVersion(board, { name: 'lb-b', rank: 4, trainableParameters: 1000, downloads: 50 });
    ids.quick = await seedVersion(board, { name: 'lb-quick', rank: 4, trainableParameters: 1000, downloads: 0, card: MODEL_INDEX });
    ids.outside = await seedVersion(board, { name: 'lb-outside', rank: 4, trainableParameters: 1000, downloads: 0 });
    // Claims a score in its card but was never evaluated here.
    ids.claims = await seedVersion(board, { name: 'lb-claims', rank: 4, trainableParameters: 1000, downloads: 0, card: MODEL_INDEX, domain: `lb-${tag}` });

    await seedResult(board, { taskId: board.domainTask, adapterVersionId: null, correct: 1 });
    await seedResult(board, { taskId: board.generalTask, adapterVersionId: null, correct: 2 });
    await seedResult(board, { taskId: board.domainTask, adapterVersionId: ids.a, correct: 3 });
    await seedResult(board, { taskId: board.generalTask, adapterVersionId: ids.a, correct: 2 });
    await seedResult(board, { taskId: board.domainTask, adapterVersionId: ids.b, correct: 2 });
    await seedResult(board, { taskId: board.generalTask, adapterVersionId: ids.b, correct: 3 });
    // Perfect, but on the first 2 items only: a different configuration, never ranked.
    await seedResult(board, { taskId: board.domainTask, adapterVersionId: ids.quick, correct: 2, total: 2, limit: 2 });
    // Perfect under the suite's configuration, but not scored by a runner.
    await seedResult(board, { taskId: board.domainTask, adapterVersionId: ids.outside, correct: 4, byRunner: false });
  });

  it('ranks by suite score with gain and forgetting', async () => {
    const result = await user.client.evals.suiteLeaderboard.query({ suiteId: board.domainSuite, baseModelId: TINY_BASE_ID });
    expect(result.entries.map((e) => [e.rank, e.name])).toEqual([[1, 'lb-a'], [2, 'lb-b']]);
    const [a, b] = result.entries;
    expect(result.base?.score).toBeCloseTo(0.25, 10);
    expect(a!.score).toBeCloseTo(0.75, 10);
    expect(a!.gain).toBeCloseTo(0.5, 10);
    expect(a!.forgetting).toBeCloseTo(0, 10);
    expect(b!.gain).toBeCloseTo(0.25, 10);
    expect(b!.forgetting).toBeCloseTo(0.25, 10);
    expect(a!.stderr).toBeGreaterThan(0);
    expect(a).toMatchObject({ trainableParameters: 2000, loraRank: 8, downloads: 5, adapter: `${user.namespace}/lb-a`, version: 1 });
    expect(result.general).toMatchObject({ id: GENERAL_SUITE, baseScore: 0.5 });
    expect(result.baselines).toEqual({ random: 0.5, majority: 0.5 });
  });

  it('never ranks a run on fewer items or outside a runner', async () => {
    const result = await user.client.evals.suiteLeaderboard.query({ suiteId: board.domainSuite, baseModelId: TINY_BASE_ID });
    expect(result.entries.map((e) => e.name)).not.toContain('lb-quick');
    expect(result.entries.map((e) => e.name)).not.toContain('lb-outside');
    const quick = result.unranked.find((u) => u.name === 'lb-quick');
    expect(quick?.reason).toMatch(/scored on 2 items or with other settings/);
    expect(result.unranked.map((u) => u.name)).not.toContain('lb-outside');
  });

  it('lists self-reported scores apart, unranked', async () => {
    const result = await user.client.evals.suiteLeaderboard.query({ suiteId: board.domainSuite, baseModelId: TINY_BASE_ID });
    const quick = result.selfReported.find((s) => s.adapter === `${user.namespace}/lb-quick`);
    expect(quick?.metrics).toEqual([{ model: 'quick', task: 'text-classification', dataset: 'lb domain', metric: 'accuracy', value: 0.99 }]);
    const claims = result.selfReported.find((s) => s.adapter === `${user.namespace}/lb-claims`);
    expect(claims?.metrics[0]?.value).toBe(0.99);
    expect(result.entries.map((e) => e.name)).not.toContain('lb-claims');
    expect(result.unranked.map((u) => u.name)).not.toContain('lb-claims');
  });

  it('sorts and filters without changing ranks', async () => {
    // The namespace is `lb-` and 8 random hex digits, so a bare `lb-b` could match both adapters.
    const byGain = await user.client.evals.suiteLeaderboard.query({ suiteId: board.domainSuite, baseModelId: TINY_BASE_ID, sort: 'gain', order: 'asc' });
    expect(byGain.entries.map((e) => [e.rank, e.name])).toEqual([[2, 'lb-b'], [1, 'lb-a']]);
    const byDownloads = await user.client.evals.suiteLeaderboard.query({ suiteId: board.domainSuite, baseModelId: TINY_BASE_ID, sort: 'downloads' });
    expect(byDownloads.entries.map((e) => e.name)).toEqual(['lb-b', 'lb-a']);
    const named = await user.client.evals.suiteLeaderboard.query({ suiteId: board.domainSuite, baseModelId: TINY_BASE_ID, query: '/LB-B@' });
    expect(named.entries.map((e) => [e.rank, e.name])).toEqual([[2, 'lb-b']]);
    const rank8 = await user.client.evals.suiteLeaderboard.query({ suiteId: board.domainSuite, baseModelId: TINY_BASE_ID, loraRank: 8 });
    expect(rank8.entries.map((e) => e.name)).toEqual(['lb-a']);
  });

  it('prints the suite leaderboard in the CLI', async () => {
    const printed = runCli(['leaderboard', '--suite', board.domainSuite, '--base', TINY_BASE_ID], user.token);
    expect(printed.stderr).toBe('');
    const lines = printed.stdout.trim().split('\n');
    expect(lines[1]).toBe('  base: 25.0% ± 25.0%');
    expect(lines[2]).toBe(`  #1 ${user.namespace}/lb-a@1: 75.0% ± 25.0%, gain +50.0, general +0.0`);
    expect(lines).toContain(`  not ranked ${user.namespace}/lb-quick@1: task ${board.domainTask} was scored on 2 items or with other settings, not with this suite version's configuration`);
  });

  it('exports CSV and JSON in leaderboard order', async () => {
    const csv = await fetch(`${appUrl}/api/leaderboards/${board.domainSuite}/csv?base=${TINY_BASE_ID}&sort=gain&order=asc`);
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    const lines = (await csv.text()).trim().split('\r\n');
    expect(lines[0]).toBe('rank,adapter,version,suite_score,stderr,gain,general_change,trainable_parameters,share_of_base,lora_rank,downloads,contamination_flagged,max_overlap');
    expect(lines.slice(1).map((line) => line.split(',').slice(0, 2))).toEqual([['2', `${user.namespace}/lb-b`], ['1', `${user.namespace}/lb-a`]]);
    expect(Number(lines[2]!.split(',')[5])).toBeCloseTo(0.5, 10);

    const json = await fetch(`${appUrl}/api/leaderboards/${board.domainSuite}/json?base=${TINY_BASE_ID}`);
    expect(json.status).toBe(200);
    const body = await json.json() as { entries: { name: string; gain: number }[]; unranked: { name: string }[] };
    expect(body.entries.map((e) => e.name)).toEqual(['lb-a', 'lb-b']);
    expect(body.unranked.map((u) => u.name)).toContain('lb-quick');

    const bad = await fetch(`${appUrl}/api/leaderboards/${board.domainSuite}/csv?sort=accuracy`);
    expect(bad.status).toBe(400);
    expect((await bad.json() as { error: string }).error).toMatch(/sort="accuracy" is not a column; use one of score, gain/);
    expect((await fetch(`${appUrl}/api/leaderboards/no-such-suite/json`)).status).toBe(404);
  });

  it('draws a badge with the score, or not evaluated', async () => {
    const scored = await fetch(`${appUrl}/api/badge/${user.namespace}/lb-a/1/${board.domainSuite}.svg`);
    expect(scored.status).toBe(200);
    expect(scored.headers.get('content-type')).toMatch(/^image\/svg\+xml/);
    expect(scored.headers.get('cache-control')).toMatch(/max-age=300/);
    const svg = await scored.text();
    expect(svg).toMatch(/^<svg /);
    expect(svg).toContain('75.0% (+50.0)');

    const latest = await (await fetch(`${appUrl}/api/badge/${user.namespace}/lb-a/latest/${board.domainSuite}.svg`)).text();
    expect(latest).toContain('75.0%');
    const quick = await fetch(`${appUrl}/api/badge/${user.namespace}/lb-quick/1/${board.domainSuite}.svg`);
    expect(quick.status).toBe(200);
    expect(await quick.text()).toContain('not evaluated');
    const missing = await fetch(`${appUrl}/api/badge/${user.namespace}/no-such-adapter/1/${board.domainSuite}.svg`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toContain('not found');
    expect((await fetch(`${appUrl}/api/badge/${user.namespace}/lb-a/first/${board.domainSuite}.svg`)).status).toBe(400);
  });

  it('compares versions task by task', async () => {
    const comparison = await user.client.evals.compare.query({ versions: [{ namespace: user.namespace, name: 'lb-b', version: 1 }, { namespace: user.namespace, name: 'lb-a', version: 1 }] });
    const domain = comparison.tasks.find((t) => t.taskId === board.domainTask)!;
    expect(domain.scores.map((s) => s?.accuracy)).toEqual([0.5, 0.75]);
    expect(domain.differences[1]).toBeCloseTo(0.25, 10);
    expect(domain.base?.accuracy).toBe(0.25);
    await expect(user.client.evals.compare.query({ versions: [{ namespace: user.namespace, name: 'lb-a', version: 1 }] })).rejects.toThrow(/at least 2 versions/);
  });

  it('keeps results of older suite versions when the seed changes', async () => {
    const admin = await adminClient();
    const v2 = await admin.evals.registerSuite.mutate({ id: board.domainSuite, displayName: `LB ${tag}`, description: 'one task', domain: `lb-${tag}`, seed: 6, tasks: [{ taskId: board.domainTask, numFewshot: 0, limit: null }] });
    expect(v2.version).toBe(2);
    const before = await board.db.select({ id: evalResults.id }).from(evalResults).where(eq(evalResults.adapterVersionId, ids.a!));

    // No run under seed 6 yet, so version 2 has no ranked entry.
    const empty = await user.client.evals.suiteLeaderboard.query({ suiteId: board.domainSuite, baseModelId: TINY_BASE_ID });
    expect(empty.suite.version).toBe(2);
    expect(empty.entries).toEqual([]);

    await seedResult(board, { taskId: board.domainTask, adapterVersionId: null, correct: 2, seed: 6 });
    await seedResult(board, { taskId: board.domainTask, adapterVersionId: ids.a!, correct: 4, seed: 6 });
    const after = await board.db.select({ id: evalResults.id }).from(evalResults).where(eq(evalResults.adapterVersionId, ids.a!));
    expect(after.length).toBe(before.length + 1);

    const second = await user.client.evals.suiteLeaderboard.query({ suiteId: board.domainSuite, baseModelId: TINY_BASE_ID });
    expect(second.entries.map((e) => [e.name, e.score, e.gain])).toEqual([['lb-a', 1, 0.5]]);
    const first = await user.client.evals.suiteLeaderboard.query({ suiteId: board.domainSuite, suiteVersion: 1, baseModelId: TINY_BASE_ID });
    expect(first.entries.map((e) => [e.name, e.score])).toEqual([['lb-a', 0.75], ['lb-b', 0.5]]);
  });
});

describe('automatic suite evaluation with a contamination check', () => {
  let runner: RunnerProcess;
  let user: Awaited<ReturnType<typeof newUser>>;
  let board: SeededBoard;
  const trainTag = `run${randomUUID().slice(0, 4)}`;

  beforeAll(async () => {
    user = await newUser('lbrun');
    board = await seedSuites(await adminClient(), trainTag, user.namespace);
    // Base scores under both suites' configurations, so the jobs score the adapter alone.
    await seedResult(board, { taskId: board.domainTask, adapterVersionId: null, correct: 2 });
    await seedResult(board, { taskId: board.generalTask, adapterVersionId: null, correct: 2 });
    runner = await startRunner('lb-runner');
  });
  afterAll(async () => {
    await runner?.stop();
  });

  it('flags the planted overlap and ranks the new version', async () => {
    // Three of the four domain items appear word for word in the training data.
    const planted = taskRows(`${trainTag} cardiology`).slice(0, 3).map((item) => ({ prompt: item.prompt, completion: item.choices[item.gold]! }));
    const filler = Array.from({ length: 9 }, (_, i) => ({ prompt: `unrelated question ${i}`, completion: `answer ${i}` }));
    const file = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'lb-train-')), 'train.jsonl');
    await fs.writeFile(file, toJsonl([...planted, ...filler]));
    const dataset = await uploadDataset(user.client, file, 'lb-train', TINY_BASE_ID);

    const { jobId } = await user.client.finetune.create.mutate({
      datasetVersionId: dataset.datasetVersionId, baseModelId: TINY_BASE_ID, adapterName: 'lb-trained', domain: `lb-${trainTag}`, description: '', evalLimit: null,
      hyperparameters: tinyHyperparameters({ maxSeqLength: 96 }),
    });
    const finetune = await waitForJob(user.client, jobId, ['succeeded', 'failed', 'cancelled'], 300_000);
    expect(finetune.error).toBeNull();
    // The domain suite and the general suite, one task each.
    expect(finetune.children).toHaveLength(2);
    for (const child of finetune.children) {
      const job = await waitForJob(user.client, child.id, ['succeeded', 'failed', 'cancelled'], 300_000);
      expect(job.error).toBeNull();
      expect(job.progress).toMatchObject({ type: 'progress', unit: 'items', step: 4, totalSteps: 4 });
    }

    const result = await user.client.evals.suiteLeaderboard.query({ suiteId: board.domainSuite, baseModelId: TINY_BASE_ID });
    const entry = result.entries.find((e) => e.name === 'lb-trained');
    expect(entry?.contamination).toEqual({ flagged: true, maxOverlap: 0.75, flaggedTasks: [board.domainTask] });
    expect(entry?.forgetting).not.toBeNull();

    const run = await user.client.evals.run.query({ id: entry!.tasks[0]!.resultId });
    expect(run.contamination).toMatchObject({ status: 'checked', n: 13, checkedItems: 4, contaminatedItems: 3, flagged: true, examples: [`${trainTag} cardiology-1`, `${trainTag} cardiology-2`, `${trainTag} cardiology-3`] });
    expect(run.ranOnRunner).toBe(true);
    expect(run.task.baselines?.random).toBe(0.5);

    const general = await user.client.evals.suiteLeaderboard.query({ suiteId: GENERAL_SUITE, baseModelId: TINY_BASE_ID });
    const generalRun = await user.client.evals.run.query({ id: general.entries.find((e) => e.name === 'lb-trained')!.tasks[0]!.resultId });
    expect(generalRun.contamination).toMatchObject({ status: 'checked', contaminatedItems: 0, flagged: false });
  });
});
