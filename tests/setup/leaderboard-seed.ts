import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { eq } from 'drizzle-orm';
import { adapters, adapterVersions, evalResults, jobs, namespaces, runners, runnerTokens, users } from '@/drizzle/schema';
import { getDb, type Db } from '@/server/db';
import { configHash, getSuite, getTask } from '@/server/services/evaluations';
import { registerTaskFromFile } from '../../scripts/seed-lib';
import type { Client } from '../../lib/trpc-client';
import { TINY_BASE_ID } from './env';

/**
 * Seeds suite leaderboards with database rows: tasks and suites are registered through the
 * API (their files go to the real S3), while adapter versions, jobs and results are inserted
 * directly, so a test controls every score. Each caller passes its own `tag`, which names its
 * domain task and suite, so test files sharing the database never see each other's rows. The
 * general suite `lb-general` is shared: registering it again keeps its version.
 */

export const ITEMS = 4;
export const GENERAL_SUITE = 'lb-general';

/** Builds a four-item yes/no task whose prompts are long enough (over 13 words) for the contamination check. */
export function taskRows(topic: string) {
  return Array.from({ length: ITEMS }, (_, index) => ({
    id: `${topic}-${index + 1}`,
    prompt: `Question ${index + 1} about ${topic}: considering the evidence reported in the study number ${index + 1} on ${topic}, does the treatment improve the outcome of patients?`,
    choices: ['yes', 'no'],
    gold: index % 2,
  }));
}

async function registerTask(admin: Client, id: string, domain: string, topic: string) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lb-task-'));
  const file = path.join(dir, `${id}.jsonl`);
  await fs.writeFile(file, taskRows(topic).map((row) => JSON.stringify(row)).join('\n') + '\n');
  await registerTaskFromFile(admin, file, { id, displayName: `${id} task`, description: `four ${topic} items`, domain });
}

export interface SeededBoard {
  db: Db;
  domainSuite: string;
  domainTask: string;
  generalTask: string;
  runnerId: string;
  namespaceId: string;
}

/** Registers the tag's domain task and suite (seed 5, no limit) and the shared general suite. */
export async function seedSuites(admin: Client, tag: string, namespace: string): Promise<SeededBoard> {
  const db = await getDb();
  const domainTask = `lb-${tag}-task`;
  const generalTask = 'lb-general-task';
  await registerTask(admin, domainTask, `lb-${tag}`, `${tag} cardiology`);
  await registerTask(admin, generalTask, 'general', 'general science');
  const domainSuite = `lb-${tag}`;
  await admin.evals.registerSuite.mutate({ id: domainSuite, displayName: `LB ${tag}`, description: 'one task', domain: `lb-${tag}`, seed: 5, tasks: [{ taskId: domainTask, numFewshot: 0, limit: null }] });
  await admin.evals.registerSuite.mutate({ id: GENERAL_SUITE, displayName: 'LB general', description: 'one task', domain: 'general', seed: 5, tasks: [{ taskId: generalTask, numFewshot: 0, limit: null }] });

  const [admin_] = await db.select({ id: users.id }).from(users).where(eq(users.isAdmin, true)).limit(1);
  const [token] = await db.insert(runnerTokens).values({ name: `lb-${tag}`, prefix: 'amr_seed', tokenHash: createHash('sha256').update(randomUUID()).digest('hex'), createdBy: admin_!.id }).returning({ id: runnerTokens.id });
  const [runner] = await db.insert(runners).values({ tokenId: token!.id, name: `lb-${tag}`, capabilities: {} }).returning({ id: runners.id });
  const [owner] = await db.select({ id: namespaces.id }).from(namespaces).where(eq(namespaces.name, namespace));
  return { db, domainSuite, domainTask, generalTask, runnerId: runner!.id, namespaceId: owner!.id };
}

/** Inserts an adapter version with the listing facts the leaderboard shows. */
export async function seedVersion(board: SeededBoard, input: { name: string; rank: number; trainableParameters: number; downloads: number; card?: Record<string, unknown>; domain?: string }) {
  const { db } = board;
  const [adapter] = await db.insert(adapters).values({ namespaceId: board.namespaceId, name: input.name, baseModelId: TINY_BASE_ID, domain: input.domain ?? null }).returning({ id: adapters.id });
  const [version] = await db.insert(adapterVersions).values({
    adapterId: adapter!.id, version: 1, config: {}, downloads: input.downloads, cardMetadata: { extra: input.card ?? {} },
    configSummary: { rank: input.rank, trainableParameters: input.trainableParameters, shareOfBase: input.trainableParameters / 1_000_000 },
  }).returning({ id: adapterVersions.id });
  await db.update(adapters).set({ latestVersion: 1 }).where(eq(adapters.id, adapter!.id));
  return version!.id;
}

/**
 * Inserts one evaluation result as a succeeded job would record it. `limit`, `seed` and
 * `numFewshot` feed the config hash exactly as createEvaluationJob computes it; `byRunner:
 * false` leaves the job without a runner.
 */
export async function seedResult(board: SeededBoard, input: {
  taskId: string; adapterVersionId: number | null; correct: number; total?: number; limit?: number | null; seed?: number; numFewshot?: number; byRunner?: boolean;
}) {
  const { db } = board;
  const task = await getTask(db, input.taskId);
  const total = input.total ?? ITEMS;
  const seed = input.seed ?? 5;
  const numFewshot = input.numFewshot ?? 0;
  const hash = configHash(task, { limit: input.limit ?? null, numFewshot, seed });
  const [job] = await db.insert(jobs).values({
    kind: 'evaluate', state: 'succeeded', namespaceId: board.namespaceId, baseModelId: TINY_BASE_ID, maxAttempts: 1,
    runnerId: input.byRunner === false ? null : board.runnerId, params: { taskId: task.id, configHash: hash, subjects: [] },
  }).returning({ id: jobs.id });
  const accuracy = input.correct / total;
  const [row] = await db.insert(evalResults).values({
    taskId: task.id, taskVersion: task.version, baseModelId: TINY_BASE_ID, adapterVersionId: input.adapterVersionId, jobId: job!.id,
    correct: input.correct, total, accuracy, stderr: Math.sqrt((accuracy * (1 - accuracy)) / Math.max(1, total - 1)), configHash: hash,
    hardware: 'seeded row', durationSeconds: 1, accNorm: accuracy, accNormStderr: 0, harnessVersion: '0.4.13', numFewshot, seed,
  }).returning({ id: evalResults.id });
  return row!.id;
}

/** The suite's current version, for assertions. */
export async function suiteVersion(db: Db, id: string) {
  return (await getSuite(db, id)).version;
}
