import { and, desc, eq, inArray, isNotNull, sql } from 'drizzle-orm';
import { adapters, adapterVersions, benchmarkTasks, evalResults, evalSuites, jobs, namespaces, type TaskBaselines } from '@/drizzle/schema';
import { selfReportedMetrics, type SelfReportedMetric } from '../formats/model-index';
import type { Db } from '../db';
import { badRequest, notFound } from './errors';
import { configHash, GENERAL_DOMAIN, getSuite, latestSuiteOfDomain } from './evaluations';
import { canReadAdapter, readableAdapters, type Reader } from './visibility';

/**
 * Suite leaderboards. A result counts for a suite version only when one of our runners scored
 * it under exactly that suite task's configuration. The config hash covers the task version
 * and data, item limit, few-shot count, seed and scoring method. The result must also cover
 * the same number of items, with the same harness version, as the base model's result it is
 * compared with. A version ranks only when every task of the suite has such a result, so a
 * quick run on a few items, or a run with other settings, is listed as not comparable and
 * cannot outrank a full run.
 */

type SuiteDefinition = Awaited<ReturnType<typeof getSuite>>;

interface ResultRow {
  id: number; taskId: string; taskVersion: number; adapterVersionId: number | null; accuracy: number; stderr: number; total: number; correct: number;
  configHash: string; harnessVersion: string | null; suiteId: string | null; suiteVersion: number | null; contamination: Record<string, unknown> | null; jobId: string;
}

interface TaskScore { taskId: string; resultId: number; accuracy: number; stderr: number; total: number; harnessVersion: string | null; contamination: Record<string, unknown> | null }

export interface SuiteScore {
  score: number;
  // Standard error of the mean over tasks, from the tasks' standard errors taken as independent.
  stderr: number;
  tasks: TaskScore[];
}

/** Builds, per task of a suite version, the test a result must pass to count for it. */
async function suiteMatchers(db: Db, suite: SuiteDefinition) {
  const matchers = new Map<string, (row: ResultRow) => boolean>();
  const tasks = await db.select().from(benchmarkTasks).where(inArray(benchmarkTasks.id, suite.tasks.map((t) => t.taskId)));
  for (const entry of suite.tasks) {
    const task = tasks.find((t) => t.id === entry.taskId);
    if (task && task.version === entry.taskVersion) {
      const hash = configHash(task, { limit: entry.limit, numFewshot: entry.numFewshot, seed: suite.seed });
      matchers.set(entry.taskId, (row) => row.configHash === hash);
    } else {
      // NOTE: the task changed since this suite version, and the data hash of its old version is
      // not stored, so only runs requested through this suite version are recognised.
      matchers.set(entry.taskId, (row) => row.suiteId === suite.id && row.suiteVersion === suite.version && row.taskVersion === entry.taskVersion);
    }
  }
  return { matchers, tasks };
}

/** Results of a suite's tasks on one base model that our runners scored, newest first. */
async function runnerResults(db: Db, taskIds: string[], baseModelId: string, adapterVersionIds?: number[]): Promise<ResultRow[]> {
  if (taskIds.length === 0) return [];
  return db.select({
    id: evalResults.id, taskId: evalResults.taskId, taskVersion: evalResults.taskVersion, adapterVersionId: evalResults.adapterVersionId,
    accuracy: evalResults.accuracy, stderr: evalResults.stderr, total: evalResults.total, correct: evalResults.correct, configHash: evalResults.configHash,
    harnessVersion: evalResults.harnessVersion, suiteId: evalResults.suiteId, suiteVersion: evalResults.suiteVersion, contamination: evalResults.contamination, jobId: evalResults.jobId,
  }).from(evalResults).innerJoin(jobs, eq(jobs.id, evalResults.jobId))
    .where(and(
      inArray(evalResults.taskId, taskIds), eq(evalResults.baseModelId, baseModelId), eq(jobs.kind, 'evaluate'), isNotNull(jobs.runnerId),
      adapterVersionIds ? sql`(${evalResults.adapterVersionId} is null or ${inArray(evalResults.adapterVersionId, adapterVersionIds.length ? adapterVersionIds : [-1])})` : undefined,
    ))
    .orderBy(desc(evalResults.createdAt), desc(evalResults.id));
}

/**
 * Groups matching results per subject (null: the base model), keeping the newest per task, and
 * returns `score`, which gives a subject's suite score or null when a task has no result.
 */
function scoreSubjects(suite: SuiteDefinition, rows: ResultRow[], matchers: Map<string, (row: ResultRow) => boolean>) {
  const perSubject = new Map<number | null, Map<string, ResultRow>>();
  const other = new Map<number, ResultRow[]>();
  for (const row of rows) {
    const matches = matchers.get(row.taskId)?.(row) ?? false;
    if (!matches) {
      if (row.adapterVersionId !== null) other.set(row.adapterVersionId, [...(other.get(row.adapterVersionId) ?? []), row]);
      continue;
    }
    const tasks = perSubject.get(row.adapterVersionId) ?? new Map<string, ResultRow>();
    if (!tasks.has(row.taskId)) tasks.set(row.taskId, row);
    perSubject.set(row.adapterVersionId, tasks);
  }
  const score = (tasks: Map<string, ResultRow> | undefined): SuiteScore | null => {
    if (!tasks || suite.tasks.some((t) => !tasks.has(t.taskId))) return null;
    const chosen = suite.tasks.map((t) => tasks.get(t.taskId)!);
    return {
      score: chosen.reduce((sum, r) => sum + r.accuracy, 0) / chosen.length,
      stderr: Math.sqrt(chosen.reduce((sum, r) => sum + r.stderr ** 2, 0)) / chosen.length,
      tasks: chosen.map((r) => ({ taskId: r.taskId, resultId: r.id, accuracy: r.accuracy, stderr: r.stderr, total: r.total, harnessVersion: r.harnessVersion, contamination: r.contamination })),
    };
  };
  return { perSubject, other, score };
}

/** Returns why a version's suite score is not comparable with the base model's, or null when it is. */
function comparability(entry: SuiteScore | null, base: SuiteScore | null, partial: Map<string, ResultRow> | undefined, suite: SuiteDefinition, others: ResultRow[] | undefined): string | null {
  if (!base) return 'the base model has no complete run of this suite version yet';
  if (!entry) {
    const missing = suite.tasks.filter((t) => !partial?.has(t.taskId)).map((t) => t.taskId);
    const fewer = others?.find((r) => missing.includes(r.taskId));
    return fewer
      ? `task ${fewer.taskId} was scored on ${fewer.total} items or with other settings, not with this suite version's configuration`
      : `no run of ${missing.join(', ')} under this suite version's configuration`;
  }
  for (const [index, task] of entry.tasks.entries()) {
    const baseTask = base.tasks[index]!;
    if (task.total !== baseTask.total) return `task ${task.taskId} has ${task.total} items scored, the base model ${baseTask.total}`;
    if (task.harnessVersion !== baseTask.harnessVersion) return `task ${task.taskId} was scored with lm_eval ${task.harnessVersion}, the base model with ${baseTask.harnessVersion}`;
  }
  return null;
}

export const leaderboardSorts = ['score', 'gain', 'forgetting', 'parameters', 'rank', 'downloads', 'name'] as const;
export type LeaderboardSort = (typeof leaderboardSorts)[number];

export interface SuiteLeaderboardInput {
  suiteId: string;
  suiteVersion?: number;
  baseModelId?: string;
  sort?: LeaderboardSort;
  order?: 'asc' | 'desc';
  // Substring of `namespace/name`, case-insensitive.
  query?: string;
  loraRank?: number;
  hideContaminated?: boolean;
}

/** Picks the base model with the most results on a suite's tasks when none is named. */
async function defaultBaseModel(db: Db, taskIds: string[]): Promise<string | null> {
  if (taskIds.length === 0) return null;
  const [row] = await db.select({ id: evalResults.baseModelId, count: sql<number>`count(*)` }).from(evalResults)
    .where(inArray(evalResults.taskId, taskIds)).groupBy(evalResults.baseModelId).orderBy(desc(sql`count(*)`), evalResults.baseModelId).limit(1);
  return row?.id ?? null;
}

/** Suite scores of chosen versions and of the base model on the general suite, for the forgetting column. */
async function generalScores(db: Db, suiteId: string, baseModelId: string, versionIds: number[]) {
  const general = await latestSuiteOfDomain(db, GENERAL_DOMAIN);
  if (!general || general.id === suiteId) return null;
  const suite = await getSuite(db, general.id, general.version);
  const { matchers } = await suiteMatchers(db, suite);
  const rows = await runnerResults(db, suite.tasks.map((t) => t.taskId), baseModelId, versionIds);
  const { perSubject, score } = scoreSubjects(suite, rows, matchers);
  const base = score(perSubject.get(null));
  const versions = new Map<number, SuiteScore | null>();
  for (const id of versionIds) {
    const entry = score(perSubject.get(id));
    versions.set(id, entry && base && !comparability(entry, base, perSubject.get(id), suite, undefined) ? entry : null);
  }
  return { suite: { id: suite.id, version: suite.version, displayName: suite.displayName }, base, versions };
}

function contaminationSummary(tasks: TaskScore[]) {
  const checked = tasks.map((t) => t.contamination).filter((c): c is Record<string, unknown> => c?.status === 'checked');
  if (checked.length === 0) return null;
  return {
    flagged: checked.some((c) => c.flagged === true),
    maxOverlap: Math.max(...checked.map((c) => Number(c.overlap ?? 0))),
    flaggedTasks: tasks.filter((t) => t.contamination?.status === 'checked' && t.contamination.flagged === true).map((t) => t.taskId),
  };
}

/**
 * Builds the leaderboard of one suite version and base model. Each entry has the suite score
 * (mean task accuracy) with its standard error, the gain over the base model, the change on
 * the general suite, size and downloads. Versions whose runs are not comparable, and
 * self-reported scores from model cards, are returned apart and never rank.
 */
export async function suiteLeaderboard(db: Db, reader: Reader, input: SuiteLeaderboardInput) {
  const suite = await getSuite(db, input.suiteId, input.suiteVersion);
  const versions = await db.select({ version: evalSuites.version, createdAt: evalSuites.createdAt }).from(evalSuites).where(eq(evalSuites.id, suite.id)).orderBy(desc(evalSuites.version));
  const { matchers, tasks } = await suiteMatchers(db, suite);
  const taskIds = suite.tasks.map((t) => t.taskId);
  const baseModelId = input.baseModelId ?? await defaultBaseModel(db, taskIds);

  const suiteInfo = {
    id: suite.id, version: suite.version, displayName: suite.displayName, description: suite.description, domain: suite.domain, seed: suite.seed,
    versions: versions.map((v) => v.version),
    tasks: suite.tasks.map((t) => {
      const task = tasks.find((row) => row.id === t.taskId);
      return { ...t, displayName: task?.displayName ?? t.taskId, itemCount: task?.itemCount ?? null, baselines: (task?.baselines ?? null) as TaskBaselines | null };
    }),
  };
  const baselineTasks = suiteInfo.tasks.map((t) => t.baselines);
  const baselines = baselineTasks.every((b) => b !== null) && baselineTasks.length > 0
    ? { random: baselineTasks.reduce((s, b) => s + b!.random, 0) / baselineTasks.length, majority: baselineTasks.reduce((s, b) => s + b!.majority.accuracy, 0) / baselineTasks.length }
    : null;
  if (!baseModelId) return { suite: suiteInfo, baseModelId: null, baselines, base: null, general: null, entries: [], unranked: [], selfReported: [] };

  const rows = await runnerResults(db, taskIds, baseModelId);
  const { perSubject, other, score } = scoreSubjects(suite, rows, matchers);
  const base = score(perSubject.get(null));
  const versionIds = [...new Set(rows.map((r) => r.adapterVersionId).filter((id): id is number => id !== null))];
  const general = await generalScores(db, suite.id, baseModelId, versionIds);

  const facts = versionIds.length === 0 ? [] : await db.select({
    id: adapterVersions.id, version: adapterVersions.version, downloads: adapterVersions.downloads, configSummary: adapterVersions.configSummary,
    cardMetadata: adapterVersions.cardMetadata, name: adapters.name, namespace: namespaces.name, deleted: sql<boolean>`${adapters.deletedAt} is not null`,
  }).from(adapterVersions).innerJoin(adapters, eq(adapters.id, adapterVersions.adapterId)).innerJoin(namespaces, eq(namespaces.id, adapters.namespaceId))
    .where(and(inArray(adapterVersions.id, versionIds), await readableAdapters(reader)));

  const ranked = [];
  const unranked = [];
  for (const fact of facts) {
    // A deleted adapter leaves the leaderboard with its page.
    if (fact.deleted) continue;
    const summary = fact.configSummary as { trainableParameters?: number; shareOfBase?: number; rank?: number };
    const entryScore = score(perSubject.get(fact.id));
    const reason = comparability(entryScore, base, perSubject.get(fact.id), suite, other.get(fact.id));
    const generalScore = general?.versions.get(fact.id) ?? null;
    const common = {
      adapter: `${fact.namespace}/${fact.name}`, namespace: fact.namespace, name: fact.name, version: fact.version, adapterVersionId: fact.id,
      trainableParameters: summary.trainableParameters ?? null, shareOfBase: summary.shareOfBase ?? null, loraRank: summary.rank ?? null, downloads: fact.downloads,
    };
    if (reason !== null || !entryScore || !base) {
      unranked.push({ ...common, reason: reason ?? 'not comparable' });
      continue;
    }
    ranked.push({
      ...common, score: entryScore.score, stderr: entryScore.stderr, tasks: entryScore.tasks,
      gain: entryScore.score - base.score,
      generalScore: generalScore?.score ?? (suite.domain === GENERAL_DOMAIN ? entryScore.score : null),
      forgetting: generalScore && general?.base ? generalScore.score - general.base.score : (suite.domain === GENERAL_DOMAIN ? entryScore.score - base.score : null),
      contamination: contaminationSummary(entryScore.tasks),
    });
  }
  ranked.sort((a, b) => b.score - a.score || a.adapter.localeCompare(b.adapter) || a.version - b.version);
  let entries = ranked.map((entry, index) => ({ rank: index + 1, ...entry }));

  if (input.query) entries = entries.filter((e) => `${e.adapter}@${e.version}`.toLowerCase().includes(input.query!.toLowerCase()));
  if (input.loraRank !== undefined) entries = entries.filter((e) => e.loraRank === input.loraRank);
  if (input.hideContaminated) entries = entries.filter((e) => !e.contamination?.flagged);
  const sort = input.sort ?? 'score';
  const key = (e: (typeof entries)[number]): number | string | null => ({
    score: e.score, gain: e.gain, forgetting: e.forgetting, parameters: e.trainableParameters, rank: e.loraRank, downloads: e.downloads, name: `${e.adapter}@${String(e.version).padStart(8, '0')}`,
  })[sort];
  const direction = (input.order ?? (sort === 'name' || sort === 'parameters' || sort === 'rank' ? 'asc' : 'desc')) === 'asc' ? 1 : -1;
  entries.sort((a, b) => {
    const [x, y] = [key(a), key(b)];
    // Missing values sort last in either direction.
    if (x === null && y === null) return a.rank - b.rank;
    if (x === null) return 1;
    if (y === null) return -1;
    if (x === y) return a.rank - b.rank;
    return (x < y ? -1 : 1) * direction;
  });

  const selfReported = (await selfReportedForSuite(db, reader, suite.domain, baseModelId, facts.filter((f) => !f.deleted))).filter((f) => f.metrics.length > 0);

  return {
    suite: suiteInfo, baseModelId, baselines,
    base: base && { score: base.score, stderr: base.stderr, tasks: base.tasks },
    general: general && { ...general.suite, baseScore: general.base?.score ?? null },
    entries, unranked, selfReported,
  };
}

export type SuiteLeaderboard = Awaited<ReturnType<typeof suiteLeaderboard>>;

// Adapters of the suite's domain read for self-reported scores; the newest updated come first.
const MAX_SELF_REPORTED_ADAPTERS = 200;

/**
 * Collects self-reported card scores of the versions on the board and of the latest listed
 * version of every adapter of the suite's domain on the base model, so claims of versions we
 * never evaluated show too (apart, and never ranked).
 */
async function selfReportedForSuite(db: Db, reader: Reader, domain: string, baseModelId: string, onBoard: { id: number; version: number; name: string; namespace: string; cardMetadata: Record<string, unknown> }[]) {
  const latest = await db.select({ id: adapterVersions.id, version: adapterVersions.version, name: adapters.name, namespace: namespaces.name, cardMetadata: adapterVersions.cardMetadata })
    .from(adapters).innerJoin(namespaces, eq(namespaces.id, adapters.namespaceId))
    .innerJoin(adapterVersions, and(eq(adapterVersions.adapterId, adapters.id), eq(adapterVersions.version, adapters.latestVersion)))
    .where(and(eq(adapters.domain, domain), eq(adapters.baseModelId, baseModelId), sql`${adapters.deletedAt} is null`, await readableAdapters(reader)))
    .orderBy(desc(adapters.updatedAt)).limit(MAX_SELF_REPORTED_ADAPTERS);
  const versions = new Map<number, (typeof onBoard)[number]>();
  for (const version of [...onBoard, ...latest]) versions.set(version.id, version);
  return [...versions.values()].map((v) => ({
    adapter: `${v.namespace}/${v.name}`, version: v.version,
    metrics: selfReportedMetrics((v.cardMetadata as { extra?: Record<string, unknown> }).extra),
  }));
}

interface VersionRef { namespace: string; name: string; version: number }

async function resolveVersions(db: Db, reader: Reader, refs: VersionRef[]) {
  const readable = await readableAdapters(reader);
  const resolved = [];
  for (const ref of refs) {
    const [row] = await db.select({ id: adapterVersions.id, baseModelId: adapters.baseModelId, cardMetadata: adapterVersions.cardMetadata })
      .from(adapterVersions).innerJoin(adapters, eq(adapters.id, adapterVersions.adapterId)).innerJoin(namespaces, eq(namespaces.id, adapters.namespaceId))
      .where(and(eq(namespaces.name, ref.namespace), eq(adapters.name, ref.name), eq(adapterVersions.version, ref.version), sql`${adapters.deletedAt} is null`, readable)).limit(1);
    if (!row) throw notFound(`adapter version ${ref.namespace}/${ref.name}@${ref.version}`);
    resolved.push({ ...ref, ...row });
  }
  return resolved;
}

/**
 * Per-task scores of 2 to 4 versions of one base model and their differences from the first.
 * For each task the configuration (config hash) that the most chosen versions were scored
 * under is used, preferring more items, so every number in a row was measured the same way.
 */
export async function compareVersions(db: Db, reader: Reader, refs: VersionRef[]) {
  if (refs.length < 2 || refs.length > 4) throw badRequest(`compare 2 to 4 versions; ${refs.length} were given`);
  const versions = await resolveVersions(db, reader, refs);
  const baseModelId = versions[0]!.baseModelId;
  const other = versions.find((v) => v.baseModelId !== baseModelId);
  if (other) throw badRequest(`${other.namespace}/${other.name}@${other.version} is built on ${other.baseModelId}, but ${refs[0]!.namespace}/${refs[0]!.name} on ${baseModelId}; compare versions of one base model`);

  const ids = versions.map((v) => v.id);
  const rows = await db.select({
    id: evalResults.id, taskId: evalResults.taskId, adapterVersionId: evalResults.adapterVersionId, accuracy: evalResults.accuracy, stderr: evalResults.stderr,
    total: evalResults.total, configHash: evalResults.configHash, numFewshot: evalResults.numFewshot, seed: evalResults.seed, contamination: evalResults.contamination,
  }).from(evalResults).innerJoin(jobs, eq(jobs.id, evalResults.jobId))
    .where(and(eq(evalResults.baseModelId, baseModelId), isNotNull(jobs.runnerId), sql`(${evalResults.adapterVersionId} is null or ${inArray(evalResults.adapterVersionId, ids)})`))
    .orderBy(desc(evalResults.createdAt), desc(evalResults.id));

  const taskIds = [...new Set(rows.filter((r) => r.adapterVersionId !== null).map((r) => r.taskId))].sort();
  const tasks = [];
  for (const taskId of taskIds) {
    const forTask = rows.filter((r) => r.taskId === taskId);
    const hashes = new Map<string, { versions: Set<number>; total: number }>();
    for (const row of forTask) {
      if (row.adapterVersionId === null) continue;
      const entry = hashes.get(row.configHash) ?? { versions: new Set<number>(), total: row.total };
      entry.versions.add(row.adapterVersionId);
      hashes.set(row.configHash, entry);
    }
    const [hash, chosen] = [...hashes.entries()].sort((a, b) => b[1].versions.size - a[1].versions.size || b[1].total - a[1].total)[0]!;
    const pick = (id: number | null) => forTask.find((r) => r.configHash === hash && r.adapterVersionId === id) ?? null;
    const scores = ids.map((id) => pick(id));
    const first = scores[0];
    tasks.push({
      taskId, configHash: hash, total: chosen.total, numFewshot: scores.find(Boolean)?.numFewshot ?? 0, seed: scores.find(Boolean)?.seed ?? null,
      base: pick(null) && { accuracy: pick(null)!.accuracy, stderr: pick(null)!.stderr },
      scores: scores.map((s) => s && { resultId: s.id, accuracy: s.accuracy, stderr: s.stderr, contaminated: s.contamination?.flagged === true }),
      differences: scores.map((s) => (s && first ? s.accuracy - first.accuracy : null)),
    });
  }
  return {
    baseModelId,
    versions: versions.map((v) => ({ adapter: `${v.namespace}/${v.name}`, version: v.version, adapterVersionId: v.id, selfReported: selfReportedMetrics((v.cardMetadata as { extra?: Record<string, unknown> }).extra) })),
    tasks,
  };
}

/** Loads one evaluation result with what is needed to judge it: settings, baselines, job and the base model's score. */
export async function evaluationRun(db: Db, reader: Reader, resultId: number) {
  const [row] = await db.select({
    result: evalResults, task: benchmarkTasks, jobState: jobs.state, runnerId: jobs.runnerId, version: adapterVersions.version, name: adapters.name, namespace: namespaces.name,
    adapter: { id: adapters.id, namespaceId: adapters.namespaceId, visibility: adapters.visibility },
  })
    .from(evalResults).innerJoin(benchmarkTasks, eq(benchmarkTasks.id, evalResults.taskId)).innerJoin(jobs, eq(jobs.id, evalResults.jobId))
    .leftJoin(adapterVersions, eq(adapterVersions.id, evalResults.adapterVersionId)).leftJoin(adapters, eq(adapters.id, adapterVersions.adapterId))
    .leftJoin(namespaces, eq(namespaces.id, adapters.namespaceId))
    .where(eq(evalResults.id, resultId)).limit(1);
  // A private adapter's runs are hidden like the adapter, with the same error as a missing result.
  if (!row || (row.adapter?.id && !(await canReadAdapter(reader, row.adapter)))) throw notFound(`evaluation result ${resultId}`);
  const r = row.result;
  const [base] = r.adapterVersionId === null ? [] : await db.select({ id: evalResults.id, accuracy: evalResults.accuracy, stderr: evalResults.stderr, total: evalResults.total })
    .from(evalResults).where(and(eq(evalResults.taskId, r.taskId), eq(evalResults.baseModelId, r.baseModelId), eq(evalResults.configHash, r.configHash), sql`${evalResults.adapterVersionId} is null`))
    .orderBy(desc(evalResults.createdAt)).limit(1);
  return {
    id: r.id, adapter: row.namespace ? `${row.namespace}/${row.name}` : null, version: row.version, baseModelId: r.baseModelId,
    task: { id: row.task.id, displayName: row.task.displayName, version: r.taskVersion, currentVersion: row.task.version, itemCount: row.task.itemCount, baselines: row.task.baselines },
    metrics: { accuracy: r.accuracy, stderr: r.stderr, correct: r.correct, total: r.total, accNorm: r.accNorm, accNormStderr: r.accNormStderr, macroF1: r.macroF1 },
    base: base ?? null,
    settings: { harnessVersion: r.harnessVersion, configHash: r.configHash, taskConfigHash: r.taskConfigHash, seed: r.seed, numFewshot: r.numFewshot, suiteId: r.suiteId, suiteVersion: r.suiteVersion },
    hardware: r.hardware, durationSeconds: r.durationSeconds, jobId: r.jobId, ranOnRunner: row.runnerId !== null, createdAt: r.createdAt,
    contamination: r.contamination,
  };
}

/** Computes a version's score on the latest version of a suite, for badges. The score is null without a comparable run. */
export async function versionSuiteScore(db: Db, reader: Reader, input: { namespace: string; name: string; version: number | 'latest'; suiteId: string }) {
  const [adapter] = await db.select({ id: adapters.id, baseModelId: adapters.baseModelId, latest: adapters.latestVersion })
    .from(adapters).innerJoin(namespaces, eq(namespaces.id, adapters.namespaceId))
    .where(and(eq(namespaces.name, input.namespace), eq(adapters.name, input.name), sql`${adapters.deletedAt} is null`, await readableAdapters(reader))).limit(1);
  if (!adapter) throw notFound(`adapter ${input.namespace}/${input.name}`);
  const version = input.version === 'latest' ? adapter.latest : input.version;
  if (version === null) throw notFound(`adapter ${input.namespace}/${input.name} has no listed version`);
  const board = await suiteLeaderboard(db, reader, { suiteId: input.suiteId, baseModelId: adapter.baseModelId });
  const entry = board.entries.find((e) => e.name === input.name && e.namespace === input.namespace && e.version === version);
  return {
    suite: { id: board.suite.id, version: board.suite.version, displayName: board.suite.displayName }, version,
    score: entry?.score ?? null, stderr: entry?.stderr ?? null, gain: entry?.gain ?? null, rank: entry?.rank ?? null,
  };
}

export type { SelfReportedMetric };
