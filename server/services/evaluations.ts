import { createHash } from 'node:crypto';
import { and, desc, eq, isNull, sql } from 'drizzle-orm';
import { adapters, adapterVersions, benchmarkTasks, evalResults, jobs, namespaces, type TaskBaselines } from '@/drizzle/schema';
import { getObject } from '../storage';
import type { EvaluationResult } from '../contracts/worker-events';
import type { Db } from '../db';
import { getEnv } from '../env';
import { logger } from '../logger';
import { badRequest, notFound } from './errors';
import { refreshListing } from './adapters';
import type { EvaluateParams } from './jobs';
import type { VerifiedFile } from './uploads';

// Bump when the worker's scoring changes, so old and new scores are never mixed.
export const SCORING_METHOD = 'mc-loglik-sum-v1';

const MAX_TASK_BYTES = 64 * 1024 * 1024;

/**
 * Computes the trivial baselines of a multiple-choice task from its JSONL items: the expected
 * accuracy of a random choice, and the accuracy of always giving the most frequent answer.
 */
export function taskBaselines(text: string): { itemCount: number; baselines: TaskBaselines } {
  let randomSum = 0;
  const answers = new Map<string, number>();
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  lines.forEach((line, index) => {
    let item: { choices?: unknown; gold?: unknown };
    try {
      item = JSON.parse(line);
    } catch {
      throw badRequest(`task line ${index + 1}: invalid JSON; each line needs {"id", "prompt", "choices", "gold"}`);
    }
    const choices = item.choices;
    if (!Array.isArray(choices) || choices.length < 2 || !choices.every((c) => typeof c === 'string')) {
      throw badRequest(`task line ${index + 1}: \`choices\` must list at least two strings`);
    }
    if (!Number.isInteger(item.gold) || (item.gold as number) < 0 || (item.gold as number) >= choices.length) {
      throw badRequest(`task line ${index + 1}: \`gold\` ${JSON.stringify(item.gold)} must index one of the ${choices.length} choices`);
    }
    randomSum += 1 / choices.length;
    const answer = choices[item.gold as number] as string;
    answers.set(answer, (answers.get(answer) ?? 0) + 1);
  });
  if (lines.length === 0) throw badRequest('the task file has no items');
  const [answer, count] = [...answers.entries()].sort((a, b) => b[1] - a[1])[0]!;
  return { itemCount: lines.length, baselines: { random: randomSum / lines.length, majority: { answer, accuracy: count / lines.length } } };
}

export async function registerTask(db: Db, input: { id: string; displayName: string; description: string; domain: string; file: VerifiedFile; itemCount: number }) {
  if (input.file.size > MAX_TASK_BYTES) throw badRequest(`task file is ${input.file.size} bytes; the limit is ${MAX_TASK_BYTES}`);
  const { itemCount, baselines } = taskBaselines((await getObject(input.file.s3Key)).toString('utf8'));
  if (itemCount !== input.itemCount) throw badRequest(`the task file has ${itemCount} items but ${input.itemCount} were announced`);

  const [existing] = await db.select().from(benchmarkTasks).where(eq(benchmarkTasks.id, input.id)).limit(1);
  if (existing?.dataSha256 === input.file.sha256) {
    if (!existing.baselines) await db.update(benchmarkTasks).set({ baselines }).where(eq(benchmarkTasks.id, input.id));
    return { id: existing.id, version: existing.version };
  }
  const version = existing ? existing.version + 1 : 1;
  const values = { id: input.id, displayName: input.displayName, description: input.description, domain: input.domain, version, dataSha256: input.file.sha256, itemCount, baselines };
  await db.insert(benchmarkTasks).values(values).onConflictDoUpdate({ target: benchmarkTasks.id, set: values });
  return { id: input.id, version };
}

export async function getTask(db: Db, id: string) {
  const [task] = await db.select().from(benchmarkTasks).where(eq(benchmarkTasks.id, id)).limit(1);
  if (!task) throw notFound(`benchmark task ${JSON.stringify(id)}`);
  return task;
}

export async function listTasks(db: Db) {
  return db.select().from(benchmarkTasks).orderBy(benchmarkTasks.id);
}

function configHash(task: { id: string; version: number; dataSha256: string }, limit: number | null): string {
  return createHash('sha256').update(JSON.stringify([task.id, task.version, task.dataSha256, limit, SCORING_METHOD])).digest('hex');
}

/**
 * Queues an evaluation of one adapter version on one task. The base model is included
 * only when no score exists for the same task configuration, so it is computed once.
 */
export async function createEvaluationJob(db: Db, input: { versionId: number; taskId: string; limit: number | null; parentJobId?: string | null; createdBy?: string | null; namespaceId?: string }) {
  const [version] = await db.select({ id: adapterVersions.id, namespaceId: adapters.namespaceId, baseModelId: adapters.baseModelId })
    .from(adapterVersions).innerJoin(adapters, eq(adapters.id, adapterVersions.adapterId)).where(eq(adapterVersions.id, input.versionId)).limit(1);
  if (!version) throw notFound(`adapter version ${input.versionId}`);
  const task = await getTask(db, input.taskId);
  if (input.limit !== null && input.limit < 1) throw badRequest(`limit ${input.limit} must be a positive number of items or null for all`);
  const hash = configHash(task, input.limit);

  const [baseScore] = await db.select({ id: evalResults.id }).from(evalResults)
    .where(and(eq(evalResults.taskId, task.id), eq(evalResults.configHash, hash), eq(evalResults.baseModelId, version.baseModelId), isNull(evalResults.adapterVersionId))).limit(1);
  const subjects = [
    ...(baseScore ? [] : [{ key: 'base', adapterVersionId: null }]),
    { key: `adapter-version:${version.id}`, adapterVersionId: version.id },
  ];
  const params: EvaluateParams = { taskId: task.id, taskVersion: task.version, configHash: hash, limit: input.limit, subjects };

  const [job] = await db.insert(jobs).values({
    // The job belongs to the requester's namespace, so the requester can follow and cancel it.
    kind: 'evaluate', state: 'queued', namespaceId: input.namespaceId ?? version.namespaceId, createdBy: input.createdBy ?? null, baseModelId: version.baseModelId,
    params: params as unknown as Record<string, unknown>, parentJobId: input.parentJobId ?? null, maxAttempts: getEnv().JOB_MAX_ATTEMPTS, queuedAt: sql`now()`,
  }).returning({ id: jobs.id });
  logger.info({ jobId: job!.id, taskId: task.id, adapterVersionId: version.id }, 'evaluation queued');
  return { jobId: job!.id };
}

/** Queues the evaluations a new version gets automatically: every task of its domain. */
export async function createEvaluationJobsForVersion(db: Db, input: { versionId: number; parentJobId: string; limit: number | null; createdBy: string | null }) {
  const [version] = await db.select({ domain: adapters.domain }).from(adapterVersions).innerJoin(adapters, eq(adapters.id, adapterVersions.adapterId))
    .where(eq(adapterVersions.id, input.versionId)).limit(1);
  if (!version?.domain) return [];
  const tasks = await db.select({ id: benchmarkTasks.id }).from(benchmarkTasks).where(eq(benchmarkTasks.domain, version.domain));
  const created = [];
  for (const task of tasks) created.push(await createEvaluationJob(db, { versionId: input.versionId, taskId: task.id, limit: input.limit, parentJobId: input.parentJobId, createdBy: input.createdBy }));
  return created;
}

export async function recordEvaluationResults(db: Db, job: typeof jobs.$inferSelect, results: EvaluationResult[], hardware: string, durationSeconds: number) {
  const params = job.params as unknown as EvaluateParams;
  for (const subject of params.subjects) {
    const result = results.find((r) => r.subject === subject.key);
    if (!result) throw badRequest(`evaluation results lack subject ${subject.key}; the worker must score every subject of the job`);
    if (result.correct > result.total) throw badRequest(`subject ${subject.key}: ${result.correct} correct out of ${result.total} is impossible`);
    await db.insert(evalResults).values({
      taskId: params.taskId, taskVersion: params.taskVersion, baseModelId: job.baseModelId, adapterVersionId: subject.adapterVersionId, jobId: job.id,
      correct: result.correct, total: result.total, accuracy: result.correct / result.total, stderr: result.stderr, configHash: params.configHash,
      hardware, durationSeconds,
    }).onConflictDoNothing();
    if (subject.adapterVersionId !== null) {
      const [version] = await db.select({ adapterId: adapterVersions.adapterId }).from(adapterVersions).where(eq(adapterVersions.id, subject.adapterVersionId));
      if (version) await refreshListing(db, version.adapterId);
    }
  }
}

/**
 * Ranks adapter versions on one task and base model. Each row carries the base model's
 * score under the same task configuration, so the difference compares like with like.
 */
export async function leaderboard(db: Db, taskId: string, baseModelId?: string) {
  const task = await getTask(db, taskId);
  const rows = await db.select({
    resultId: evalResults.id, accuracy: evalResults.accuracy, stderr: evalResults.stderr, correct: evalResults.correct, total: evalResults.total,
    configHash: evalResults.configHash, baseModelId: evalResults.baseModelId, adapterVersionId: evalResults.adapterVersionId, jobId: evalResults.jobId,
    createdAt: evalResults.createdAt, version: adapterVersions.version, name: adapters.name, namespace: namespaces.name,
    deleted: sql<boolean>`${adapters.deletedAt} is not null`,
  })
    .from(evalResults)
    .leftJoin(adapterVersions, eq(adapterVersions.id, evalResults.adapterVersionId))
    .leftJoin(adapters, eq(adapters.id, adapterVersions.adapterId))
    .leftJoin(namespaces, eq(namespaces.id, adapters.namespaceId))
    .where(and(eq(evalResults.taskId, taskId), baseModelId ? eq(evalResults.baseModelId, baseModelId) : undefined))
    .orderBy(desc(evalResults.createdAt));

  // Rank each adapter version by its run over the most items, the newest among equals, so a
  // quick run on a few items never replaces a full one. Rows arrive newest first.
  const best = new Map<number, (typeof rows)[number]>();
  for (const row of rows) {
    // A deleted adapter leaves the leaderboard with its page.
    if (row.adapterVersionId === null || row.deleted) continue;
    const current = best.get(row.adapterVersionId);
    if (!current || row.total > current.total) best.set(row.adapterVersionId, row);
  }
  const baseScores = new Map<string, (typeof rows)[number]>();
  for (const row of rows) if (row.adapterVersionId === null && !baseScores.has(`${row.baseModelId}:${row.configHash}`)) baseScores.set(`${row.baseModelId}:${row.configHash}`, row);

  const entries = [];
  for (const row of best.values()) {
    const base = baseScores.get(`${row.baseModelId}:${row.configHash}`) ?? null;
    entries.push({
      adapter: `${row.namespace}/${row.name}`, version: row.version!, adapterVersionId: row.adapterVersionId!, baseModelId: row.baseModelId,
      accuracy: row.accuracy, stderr: row.stderr, correct: row.correct, total: row.total, jobId: row.jobId,
      base: base && { accuracy: base.accuracy, stderr: base.stderr, correct: base.correct, total: base.total },
      difference: base ? row.accuracy - base.accuracy : null,
    });
  }
  entries.sort((a, b) => b.accuracy - a.accuracy);
  return {
    task: { id: task.id, displayName: task.displayName, description: task.description, version: task.version, itemCount: task.itemCount, domain: task.domain, baselines: task.baselines },
    baseScores: [...baseScores.values()].map((b) => ({ baseModelId: b.baseModelId, accuracy: b.accuracy, stderr: b.stderr, correct: b.correct, total: b.total, configHash: b.configHash })),
    entries: entries.map((entry, index) => ({ rank: index + 1, ...entry })),
  };
}
