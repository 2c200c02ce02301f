import { createHash } from 'node:crypto';
import { and, asc, desc, eq, inArray, isNull, or, sql } from 'drizzle-orm';
import { adapters, adapterVersions, benchmarkTasks, evalResults, evalSuites, evalSuiteTasks, jobs, namespaces, type TaskBaselines } from '@/drizzle/schema';
import { getObject } from '../storage';
import type { EvaluationResult } from '../contracts/worker-events';
import type { Db } from '../db';
import { getEnv } from '../env';
import { logger } from '../logger';
import { badRequest, notFound, notFoundAmong } from './errors';
import { refreshListing } from './adapters';
import { measureContamination, type ContaminationReport } from './contamination';
import type { EvaluateParams } from './jobs';
import type { VerifiedFile } from './uploads';
import { readableAdapters, type Reader } from './visibility';

// Bump when the worker's scoring changes, so old and new scores are never mixed.
export const SCORING_METHOD = 'lm-eval-mc-v2';
// Few-shot seed of an evaluation requested outside a suite; the worker's default too.
export const DEFAULT_EVAL_SEED = 1234;

const MAX_TASK_BYTES = 64 * 1024 * 1024;

/**
 * Computes the trivial baselines of a multiple-choice task from its JSONL items: the expected
 * accuracy of a random choice, and the accuracy of always giving the most frequent answer.
 */
export function taskBaselines(text: string): { itemCount: number; baselines: TaskBaselines } {
  let randomSum = 0;
  const answers = new Map<string, number>();
  const choiceLists = new Set<string>();
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
    choiceLists.add(JSON.stringify(choices));
    const answer = choices[item.gold as number] as string;
    answers.set(answer, (answers.get(answer) ?? 0) + 1);
  });
  if (lines.length === 0) throw badRequest('the task file has no items');
  const [answer, count] = [...answers.entries()].sort((a, b) => b[1] - a[1])[0]!;
  const baselines: TaskBaselines = { random: randomSum / lines.length, majority: { answer, accuracy: count / lines.length } };
  // Macro-F1 means something only when a choice is a class label, that is when every item offers the same choices.
  if (choiceLists.size === 1) {
    const classes = (JSON.parse([...choiceLists][0]!) as string[]).length;
    const macro = classificationBaselines([...answers.values()], classes, lines.length);
    baselines.majority.macroF1 = macro.majority;
    baselines.randomMacroF1 = macro.random;
  }
  return { itemCount: lines.length, baselines };
}

/**
 * Computes the macro-F1 of the trivial classifiers from the gold count of each class that occurs.
 * Always answering the majority class gives that class F1 = 2p / (1 + p) (p: its share of the
 * items) and every other class 0. A class that is neither gold nor predicted is left out, as the
 * worker and scikit-learn do. A uniform random choice is scored on its expected confusion counts,
 * where class k gets F1 = 2 p_k (1/K) / (p_k + 1/K) over K classes.
 */
export function classificationBaselines(goldCounts: number[], classCount: number, total: number): { majority: number; random: number } {
  const shares = goldCounts.map((count) => count / total);
  const top = Math.max(...shares);
  const majority = (2 * top) / (1 + top) / goldCounts.length;
  const guess = 1 / classCount;
  // Classes never gold still get predicted by a random choice, with F1 0.
  const random = shares.reduce((sum, share) => sum + (2 * share * guess) / (share + guess), 0) / classCount;
  return { majority, random };
}

export async function registerTask(db: Db, input: { id: string; displayName: string; description: string; domain: string; file: VerifiedFile; itemCount: number }) {
  if (input.file.size > MAX_TASK_BYTES) throw badRequest(`task file is ${input.file.size} bytes; the limit is ${MAX_TASK_BYTES}`);
  const { itemCount, baselines } = taskBaselines((await getObject(input.file.s3Key)).toString('utf8'));
  if (itemCount !== input.itemCount) throw badRequest(`the task file has ${itemCount} items but ${input.itemCount} were announced`);

  const [existing] = await db.select().from(benchmarkTasks).where(eq(benchmarkTasks.id, input.id)).limit(1);
  if (existing?.dataSha256 === input.file.sha256) {
    // Recomputed each time, so tasks registered before a baseline was added gain it.
    await db.update(benchmarkTasks).set({ baselines }).where(eq(benchmarkTasks.id, input.id));
    return { id: existing.id, version: existing.version };
  }
  const version = existing ? existing.version + 1 : 1;
  const values = { id: input.id, displayName: input.displayName, description: input.description, domain: input.domain, version, dataSha256: input.file.sha256, itemCount, baselines };
  await db.insert(benchmarkTasks).values(values).onConflictDoUpdate({ target: benchmarkTasks.id, set: values });
  return { id: input.id, version };
}

export async function getTask(db: Db, id: string) {
  const [task] = await db.select().from(benchmarkTasks).where(eq(benchmarkTasks.id, id)).limit(1);
  if (!task) {
    const known = await db.select({ id: benchmarkTasks.id }).from(benchmarkTasks).orderBy(asc(benchmarkTasks.id));
    throw notFoundAmong(`benchmark task ${JSON.stringify(id)}`, known.map((t) => t.id));
  }
  return task;
}

export async function listTasks(db: Db) {
  return db.select().from(benchmarkTasks).orderBy(benchmarkTasks.id);
}

/** Hashes the settings that make two results comparable; a suite task's results share this hash. */
export function configHash(task: { id: string; version: number; dataSha256: string }, settings: { limit: number | null; numFewshot: number; seed: number }): string {
  return createHash('sha256').update(JSON.stringify([task.id, task.version, task.dataSha256, settings.limit, settings.numFewshot, settings.seed, SCORING_METHOD])).digest('hex');
}

/**
 * Queues an evaluation of one adapter version on one task. The base model is included
 * only when no score exists for the same task configuration, so it is computed once.
 */
export async function createEvaluationJob(db: Db, input: {
  versionId: number; taskId: string; limit: number | null; parentJobId?: string | null; createdBy?: string | null; namespaceId?: string;
  numFewshot?: number; seed?: number; suite?: { id: string; version: number } | null;
}) {
  const [version] = await db.select({ id: adapterVersions.id, namespaceId: adapters.namespaceId, baseModelId: adapters.baseModelId })
    .from(adapterVersions).innerJoin(adapters, eq(adapters.id, adapterVersions.adapterId)).where(eq(adapterVersions.id, input.versionId)).limit(1);
  if (!version) throw notFound(`adapter version ${input.versionId}`);
  const task = await getTask(db, input.taskId);
  if (input.limit !== null && input.limit < 1) throw badRequest(`limit ${input.limit} must be a positive number of items or null for all`);
  const numFewshot = input.numFewshot ?? 0;
  const seed = input.seed ?? DEFAULT_EVAL_SEED;
  if (!Number.isInteger(numFewshot) || numFewshot < 0) throw badRequest(`numFewshot ${numFewshot} must be a whole number of examples, 0 or more`);
  if (!Number.isInteger(seed) || seed < 0) throw badRequest(`seed ${seed} must be a whole number, 0 or more`);
  const hash = configHash(task, { limit: input.limit, numFewshot, seed });

  const [baseScore] = await db.select({ id: evalResults.id }).from(evalResults)
    .where(and(eq(evalResults.taskId, task.id), eq(evalResults.configHash, hash), eq(evalResults.baseModelId, version.baseModelId), isNull(evalResults.adapterVersionId))).limit(1);
  // A queued or running job that already scores the base model under this configuration
  // counts too, so the automatic evaluations of several new versions score the base once.
  const [pendingBase] = baseScore ? [] : await db.select({ id: jobs.id }).from(jobs)
    .where(and(eq(jobs.kind, 'evaluate'), eq(jobs.baseModelId, version.baseModelId), inArray(jobs.state, ['queued', 'running']),
      sql`${jobs.params}->>'configHash' = ${hash}`, sql`${jobs.params}->'subjects' @> '[{"key": "base"}]'::jsonb`)).limit(1);
  const subjects = [
    ...(baseScore || pendingBase ? [] : [{ key: 'base', adapterVersionId: null }]),
    { key: `adapter-version:${version.id}`, adapterVersionId: version.id },
  ];
  const params: EvaluateParams = {
    taskId: task.id, taskVersion: task.version, configHash: hash, limit: input.limit, numFewshot, seed, suite: input.suite ?? null, subjects,
  };

  const [job] = await db.insert(jobs).values({
    // The job belongs to the requester's namespace, so the requester can follow and cancel it.
    kind: 'evaluate', state: 'queued', namespaceId: input.namespaceId ?? version.namespaceId, createdBy: input.createdBy ?? null, baseModelId: version.baseModelId,
    params: params as unknown as Record<string, unknown>, parentJobId: input.parentJobId ?? null, maxAttempts: getEnv().JOB_MAX_ATTEMPTS, queuedAt: sql`now()`,
  }).returning({ id: jobs.id });
  logger.info({ jobId: job!.id, taskId: task.id, adapterVersionId: version.id }, 'evaluation queued');
  return { jobId: job!.id };
}

/**
 * Queues the evaluations a new version gets automatically. When a suite is registered for the
 * adapter's domain, that suite and the general suite run, with the suites' own settings, so
 * the results rank on the suite leaderboards. Otherwise, and whenever `limit` requests a
 * quick run, every task of the domain runs with that limit. `tasksWithoutSuite: false` (for
 * uploads) queues nothing when the domain has no suite.
 */
export async function createEvaluationJobsForVersion(db: Db, input: {
  versionId: number; parentJobId: string | null; limit: number | null; createdBy: string | null; namespaceId?: string; tasksWithoutSuite?: boolean;
}) {
  const [version] = await db.select({ domain: adapters.domain }).from(adapterVersions).innerJoin(adapters, eq(adapters.id, adapterVersions.adapterId))
    .where(eq(adapterVersions.id, input.versionId)).limit(1);
  if (!version?.domain) return [];
  const created: { jobId: string }[] = [];

  const domainSuite = input.limit === null ? await latestSuiteOfDomain(db, version.domain) : null;
  if (domainSuite) {
    const general = version.domain === GENERAL_DOMAIN ? null : await latestSuiteOfDomain(db, GENERAL_DOMAIN);
    for (const suite of [domainSuite, ...(general ? [general] : [])]) {
      const queued = await createSuiteEvaluation(db, { versionId: input.versionId, suiteId: suite.id, suiteVersion: suite.version, createdBy: input.createdBy, namespaceId: input.namespaceId, parentJobId: input.parentJobId });
      created.push(...queued.jobIds.map((jobId) => ({ jobId })));
    }
    return created;
  }
  if (input.tasksWithoutSuite === false) return created;
  const tasks = await db.select({ id: benchmarkTasks.id }).from(benchmarkTasks).where(eq(benchmarkTasks.domain, version.domain));
  for (const task of tasks) created.push(await createEvaluationJob(db, { versionId: input.versionId, taskId: task.id, limit: input.limit, parentJobId: input.parentJobId, createdBy: input.createdBy, namespaceId: input.namespaceId }));
  return created;
}

/**
 * Queues the automatic evaluations of a new version and logs, rather than raises, a failure:
 * the version is published already, and anyone signed in can request the evaluation again.
 */
export async function evaluateNewVersion(db: Db, input: Parameters<typeof createEvaluationJobsForVersion>[1]) {
  try {
    return await createEvaluationJobsForVersion(db, input);
  } catch (error) {
    logger.error({ err: error, adapterVersionId: input.versionId }, 'automatic evaluation could not be queued');
    return [];
  }
}

/** The domain of the suite that measures forgetting: general knowledge an adapter should keep. */
export const GENERAL_DOMAIN = 'general';

/** Returns the newest version of the suite registered for a domain, or null; the oldest suite id wins a tie. */
export async function latestSuiteOfDomain(db: Db, domain: string): Promise<{ id: string; version: number } | null> {
  const [suite] = await db.select({ id: evalSuites.id, version: evalSuites.version }).from(evalSuites)
    .where(eq(evalSuites.domain, domain)).orderBy(asc(evalSuites.id), desc(evalSuites.version)).limit(1);
  return suite ?? null;
}

export async function recordEvaluationResults(db: Db, job: typeof jobs.$inferSelect, results: EvaluationResult[], hardware: string, durationSeconds: number) {
  const params = job.params as unknown as EvaluateParams;
  for (const subject of params.subjects) {
    const result = results.find((r) => r.subject === subject.key);
    if (!result) throw badRequest(`evaluation results lack subject ${subject.key}; the worker must score every subject of the job`);
    if (result.correct > result.total) throw badRequest(`subject ${subject.key}: ${result.correct} correct out of ${result.total} is impossible`);
    if (result.numFewshot !== (params.numFewshot ?? 0)) throw badRequest(`subject ${subject.key}: scored with ${result.numFewshot} few-shot examples, but the job asked for ${params.numFewshot}`);
    await db.insert(evalResults).values({
      taskId: params.taskId, taskVersion: params.taskVersion, baseModelId: job.baseModelId, adapterVersionId: subject.adapterVersionId, jobId: job.id,
      correct: result.correct, total: result.total, accuracy: result.correct / result.total, stderr: result.stderr, configHash: params.configHash,
      hardware, durationSeconds: result.durationSeconds ?? durationSeconds,
      accNorm: result.accNorm, accNormStderr: result.accNormStderr, macroF1: result.macroF1 ?? null, harnessVersion: result.harnessVersion,
      numFewshot: result.numFewshot, seed: result.seed, taskConfigHash: result.configHash,
      suiteId: params.suite?.id ?? null, suiteVersion: params.suite?.version ?? null,
      contamination: subject.adapterVersionId === null ? null : await contaminationOrSkip(db, subject.adapterVersionId, params, result.total),
    }).onConflictDoNothing();
    if (subject.adapterVersionId !== null) {
      const [version] = await db.select({ adapterId: adapterVersions.adapterId }).from(adapterVersions).where(eq(adapterVersions.id, subject.adapterVersionId));
      if (version) await refreshListing(db, version.adapterId);
    }
  }
}

/** Measures contamination for a result; a failure is logged and stored as skipped so the result still records. */
async function contaminationOrSkip(db: Db, adapterVersionId: number, params: EvaluateParams, itemCount: number): Promise<Record<string, unknown> | null> {
  try {
    const report: ContaminationReport | null = await measureContamination(db, { adapterVersionId, taskId: params.taskId, taskVersion: params.taskVersion, itemLimit: itemCount });
    return report as Record<string, unknown> | null;
  } catch (error) {
    logger.error({ err: error, adapterVersionId, taskId: params.taskId }, 'contamination check failed');
    return { status: 'skipped', reason: 'the check failed; the server log has the details' };
  }
}

/**
 * Ranks adapter versions on one task and base model. Each row carries the base model's
 * score under the same task configuration, so the difference compares like with like.
 */
export async function leaderboard(db: Db, reader: Reader, taskId: string, baseModelId?: string) {
  const task = await getTask(db, taskId);
  // Base model rows have no adapter; adapter rows need an adapter the reader may see.
  const readable = await readableAdapters(reader);
  const visible = readable ? or(isNull(evalResults.adapterVersionId), readable) : undefined;
  const rows = await db.select({
    resultId: evalResults.id, accuracy: evalResults.accuracy, stderr: evalResults.stderr, correct: evalResults.correct, total: evalResults.total,
    accNorm: evalResults.accNorm, accNormStderr: evalResults.accNormStderr, macroF1: evalResults.macroF1, harnessVersion: evalResults.harnessVersion,
    numFewshot: evalResults.numFewshot, seed: evalResults.seed, hardware: evalResults.hardware, durationSeconds: evalResults.durationSeconds,
    configHash: evalResults.configHash, baseModelId: evalResults.baseModelId, adapterVersionId: evalResults.adapterVersionId, jobId: evalResults.jobId,
    createdAt: evalResults.createdAt, version: adapterVersions.version, name: adapters.name, namespace: namespaces.name,
    deleted: sql<boolean>`${adapters.deletedAt} is not null`,
  })
    .from(evalResults)
    .leftJoin(adapterVersions, eq(adapterVersions.id, evalResults.adapterVersionId))
    .leftJoin(adapters, eq(adapters.id, adapterVersions.adapterId))
    .leftJoin(namespaces, eq(namespaces.id, adapters.namespaceId))
    .where(and(eq(evalResults.taskId, taskId), baseModelId ? eq(evalResults.baseModelId, baseModelId) : undefined, visible))
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
  // A base score pairs with an adapter score only under the same task settings and harness version.
  const pairing = (row: (typeof rows)[number]) => `${row.baseModelId}:${row.configHash}:${row.harnessVersion}`;
  const baseScores = new Map<string, (typeof rows)[number]>();
  for (const row of rows) if (row.adapterVersionId === null && !baseScores.has(pairing(row))) baseScores.set(pairing(row), row);

  const entries = [];
  for (const row of best.values()) {
    const base = baseScores.get(pairing(row)) ?? null;
    entries.push({
      adapter: `${row.namespace}/${row.name}`, version: row.version!, adapterVersionId: row.adapterVersionId!, baseModelId: row.baseModelId, resultId: row.resultId,
      accuracy: row.accuracy, stderr: row.stderr, correct: row.correct, total: row.total, jobId: row.jobId,
      accNorm: row.accNorm, accNormStderr: row.accNormStderr, macroF1: row.macroF1,
      harnessVersion: row.harnessVersion, numFewshot: row.numFewshot, seed: row.seed, hardware: row.hardware, durationSeconds: row.durationSeconds,
      base: base && { accuracy: base.accuracy, stderr: base.stderr, correct: base.correct, total: base.total, accNorm: base.accNorm, macroF1: base.macroF1 },
      difference: base ? row.accuracy - base.accuracy : null,
      macroF1Difference: base && base.macroF1 !== null && row.macroF1 !== null ? row.macroF1 - base.macroF1 : null,
    });
  }
  entries.sort((a, b) => b.accuracy - a.accuracy);
  return {
    task: { id: task.id, displayName: task.displayName, description: task.description, version: task.version, itemCount: task.itemCount, domain: task.domain, baselines: task.baselines },
    baseScores: [...baseScores.values()].map((b) => ({
      baseModelId: b.baseModelId, accuracy: b.accuracy, stderr: b.stderr, correct: b.correct, total: b.total, configHash: b.configHash,
      accNorm: b.accNorm, macroF1: b.macroF1, harnessVersion: b.harnessVersion, numFewshot: b.numFewshot, seed: b.seed,
    })),
    entries: entries.map((entry, index) => ({ rank: index + 1, ...entry })),
  };
}

export interface SuiteTaskInput { taskId: string; numFewshot: number; limit: number | null }

/**
 * Registers a suite's tasks and settings. The same tasks (at their current versions), few-shot
 * counts, limits and seed keep the current version; any change makes a new version, so results
 * recorded under an older version keep meaning what they meant.
 */
export async function registerSuite(db: Db, input: { id: string; displayName: string; description: string; domain: string; seed: number; tasks: SuiteTaskInput[] }) {
  if (input.tasks.length === 0) throw badRequest(`suite ${JSON.stringify(input.id)} lists no tasks; give at least one task id`);
  const duplicates = input.tasks.map((t) => t.taskId).filter((id, index, all) => all.indexOf(id) !== index);
  if (duplicates.length > 0) throw badRequest(`suite ${JSON.stringify(input.id)} lists task ${JSON.stringify(duplicates[0])} more than once`);
  const tasks: (SuiteTaskInput & { taskVersion: number })[] = [];
  for (const entry of input.tasks) {
    const task = await getTask(db, entry.taskId);
    if (entry.limit !== null && entry.numFewshot >= entry.limit) {
      throw badRequest(`task ${entry.taskId}: numFewshot ${entry.numFewshot} needs a limit above it, but the limit is ${entry.limit}`);
    }
    tasks.push({ ...entry, taskVersion: task.version });
  }

  const fingerprint = (rows: { taskId: string; taskVersion: number; numFewshot: number; limit: number | null }[], seed: number) =>
    JSON.stringify([seed, rows.map((t) => [t.taskId, t.taskVersion, t.numFewshot, t.limit])]);
  const [current] = await db.select().from(evalSuites).where(eq(evalSuites.id, input.id)).orderBy(desc(evalSuites.version)).limit(1);
  if (current) {
    const currentTasks = await db.select().from(evalSuiteTasks)
      .where(and(eq(evalSuiteTasks.suiteId, current.id), eq(evalSuiteTasks.suiteVersion, current.version))).orderBy(asc(evalSuiteTasks.position));
    if (fingerprint(currentTasks, current.seed) === fingerprint(tasks, input.seed)) return { id: current.id, version: current.version };
  }
  const version = current ? current.version + 1 : 1;
  await db.transaction(async (tx) => {
    await tx.insert(evalSuites).values({ id: input.id, version, displayName: input.displayName, description: input.description, domain: input.domain, seed: input.seed });
    await tx.insert(evalSuiteTasks).values(tasks.map((t, position) => ({
      suiteId: input.id, suiteVersion: version, taskId: t.taskId, taskVersion: t.taskVersion, numFewshot: t.numFewshot, limit: t.limit, position,
    })));
  });
  logger.info({ suiteId: input.id, version }, 'evaluation suite registered');
  return { id: input.id, version };
}

/** Returns a suite version with its tasks; without `version`, the latest. */
export async function getSuite(db: Db, id: string, version?: number) {
  const [suite] = await db.select().from(evalSuites)
    .where(and(eq(evalSuites.id, id), version === undefined ? undefined : eq(evalSuites.version, version))).orderBy(desc(evalSuites.version)).limit(1);
  if (!suite) {
    const known = await db.selectDistinct({ id: evalSuites.id }).from(evalSuites).orderBy(asc(evalSuites.id));
    throw notFoundAmong(`evaluation suite ${JSON.stringify(id)}${version === undefined ? '' : ` version ${version}`}`, known.map((t) => t.id));
  }
  const tasks = await db.select().from(evalSuiteTasks)
    .where(and(eq(evalSuiteTasks.suiteId, suite.id), eq(evalSuiteTasks.suiteVersion, suite.version))).orderBy(asc(evalSuiteTasks.position));
  return { ...suite, tasks: tasks.map(({ taskId, taskVersion, numFewshot, limit }) => ({ taskId, taskVersion, numFewshot, limit })) };
}

/** Lists the latest version of every suite. */
export async function listSuites(db: Db) {
  const latest = await db.selectDistinctOn([evalSuites.id], { id: evalSuites.id, version: evalSuites.version }).from(evalSuites).orderBy(evalSuites.id, desc(evalSuites.version));
  return Promise.all(latest.map((suite) => getSuite(db, suite.id, suite.version)));
}

/** Queues one evaluation job per task of a suite version, each with the suite's few-shot count and seed. */
export async function createSuiteEvaluation(db: Db, input: { versionId: number; suiteId: string; suiteVersion?: number; createdBy?: string | null; namespaceId?: string; parentJobId?: string | null }) {
  const suite = await getSuite(db, input.suiteId, input.suiteVersion);
  const jobIds = [];
  for (const task of suite.tasks) {
    const current = await getTask(db, task.taskId);
    if (current.version !== task.taskVersion) {
      throw badRequest(`task ${task.taskId} is at version ${current.version}, but suite ${suite.id} version ${suite.version} was defined on version ${task.taskVersion}; register the suite again to pick up the new task version`);
    }
    const { jobId } = await createEvaluationJob(db, {
      versionId: input.versionId, taskId: task.taskId, limit: task.limit, numFewshot: task.numFewshot, seed: suite.seed,
      suite: { id: suite.id, version: suite.version }, createdBy: input.createdBy ?? null, namespaceId: input.namespaceId, parentJobId: input.parentJobId ?? null,
    });
    jobIds.push(jobId);
  }
  return { suite: { id: suite.id, version: suite.version }, jobIds };
}
