import { and, desc, eq, sql } from 'drizzle-orm';
import { adapters, baseModels, benchmarkTasks, edgeExports, jobs } from '@/drizzle/schema';
import type { EdgeReport } from '../contracts/runner';
import type { Db } from '../db';
import { getEnv } from '../env';
import { logger } from '../logger';
import { presignGet } from '../storage';
import { getAdapterPage } from './adapters';
import type { Reader } from './visibility';
import { getBaseModel, GRAPH_PREFIX } from './base-models';
import { badRequest, notFound } from './errors';
import { blobObjectKey, verifyFiles, type UploadFile } from './uploads';

/** Parameters of an export job (stored in jobs.params). */
export interface ExportParams {
  // Null for the base model's own graph, stored with the base model as its onnx/ files.
  adapterVersionId: number | null;
  // Domain task whose first `taskLimit` items the edge report scores; null when the adapter's domain has none.
  taskId: string | null;
  taskLimit: number;
  loraInputs: boolean;
  // False exports only the lora-inputs graph, without merged graphs or edge report. Jobs
  // queued before this field existed lack it, which means true.
  merged?: boolean;
  maxRank: number;
  generateTokens: number;
  requirements: { memoryBytes: number; cuda: boolean };
}

export const EXPORT_DEFAULTS = { taskLimit: 8, maxRank: 64, generateTokens: 16 } as const;

// An export keeps the fp32 model in memory twice (PyTorch and the traced graph) and the
// quantizer makes a third copy. 4 bytes a parameter times 4 is an estimate with headroom.
const EXPORT_BYTES_PER_PARAMETER = 16;

/** Queues an ONNX export of one adapter version; the bundle and report are recorded with the version. */
export async function createExportJob(db: Db, reader: Reader, input: {
  namespace: string; name: string; version?: number; createdBy: string; loraInputs?: boolean; maxRank?: number; taskLimit?: number;
}) {
  const page = await getAdapterPage(db, reader, input.namespace, input.name, input.version);
  const [adapter] = await db.select({ namespaceId: adapters.namespaceId, baseModelId: adapters.baseModelId, domain: adapters.domain })
    .from(adapters).where(eq(adapters.id, page.adapterId)).limit(1);
  if (!adapter) throw notFound(`adapter ${input.namespace}/${input.name}`);

  const [running] = await db.select({ id: jobs.id }).from(jobs)
    .where(and(eq(jobs.kind, 'export'), sql`(${jobs.params}->>'adapterVersionId')::int = ${page.version.id}`, sql`${jobs.state} in ('queued', 'running')`)).limit(1);
  if (running) throw badRequest(`an export of ${page.namespace}/${page.name} version ${page.version.version} is already queued or running (job ${running.id}); wait for it to end`);

  // The first task of the adapter's domain, by id, so repeated exports score the same items.
  const [task] = adapter.domain
    ? await db.select({ id: benchmarkTasks.id }).from(benchmarkTasks).where(eq(benchmarkTasks.domain, adapter.domain)).orderBy(benchmarkTasks.id).limit(1)
    : [];
  const { parameterCount } = await getBaseModel(db, adapter.baseModelId);
  const params: ExportParams = {
    adapterVersionId: page.version.id,
    taskId: task?.id ?? null,
    taskLimit: input.taskLimit ?? EXPORT_DEFAULTS.taskLimit,
    loraInputs: input.loraInputs ?? false,
    maxRank: input.maxRank ?? EXPORT_DEFAULTS.maxRank,
    generateTokens: EXPORT_DEFAULTS.generateTokens,
    requirements: { memoryBytes: parameterCount * EXPORT_BYTES_PER_PARAMETER, cuda: false },
  };

  const [job] = await db.insert(jobs).values({
    kind: 'export', state: 'queued', namespaceId: adapter.namespaceId, createdBy: input.createdBy, baseModelId: adapter.baseModelId,
    params: params as unknown as Record<string, unknown>, maxAttempts: getEnv().JOB_MAX_ATTEMPTS, queuedAt: sql`now()`,
  }).returning({ id: jobs.id });
  logger.info({ jobId: job!.id, adapterVersionId: page.version.id, taskId: params.taskId }, 'edge export queued');
  return { jobId: job!.id };
}

/**
 * Queues an export of a base model's shared-base graph (LoRA factors as graph inputs, no
 * merged graphs), which the playground runs every adapter of that base model on. The job
 * belongs to the namespace of the admin who requested it. A finished job replaces the base
 * model's onnx/ files with the new graph.
 */
export async function createBaseExportJob(db: Db, input: { baseModelId: string; namespaceId: string; createdBy: string; maxRank?: number }) {
  const base = await getBaseModel(db, input.baseModelId);
  const maxParameters = getEnv().PLAYGROUND_MAX_PARAMETERS;
  if (base.parameterCount > maxParameters) {
    throw badRequest(`base model ${base.id} has ${base.parameterCount} parameters, above the playground limit of ${maxParameters} (PLAYGROUND_MAX_PARAMETERS); raise the limit to export its playground graph`);
  }

  const [running] = await db.select({ id: jobs.id }).from(jobs)
    .where(and(eq(jobs.kind, 'export'), eq(jobs.baseModelId, base.id), sql`${jobs.params}->'adapterVersionId' = 'null'::jsonb`, sql`${jobs.state} in ('queued', 'running')`)).limit(1);
  if (running) throw badRequest(`an export of base model ${base.id}'s playground graph is already queued or running (job ${running.id}); wait for it to end`);

  const params: ExportParams = {
    adapterVersionId: null,
    taskId: null,
    taskLimit: EXPORT_DEFAULTS.taskLimit,
    loraInputs: true,
    merged: false,
    maxRank: input.maxRank ?? EXPORT_DEFAULTS.maxRank,
    generateTokens: EXPORT_DEFAULTS.generateTokens,
    requirements: { memoryBytes: base.parameterCount * EXPORT_BYTES_PER_PARAMETER, cuda: false },
  };
  const [job] = await db.insert(jobs).values({
    kind: 'export', state: 'queued', namespaceId: input.namespaceId, createdBy: input.createdBy, baseModelId: base.id,
    params: params as unknown as Record<string, unknown>, maxAttempts: getEnv().JOB_MAX_ATTEMPTS, queuedAt: sql`now()`,
  }).returning({ id: jobs.id });
  logger.info({ jobId: job!.id, baseModelId: base.id, maxRank: params.maxRank }, 'playground graph export queued');
  return { jobId: job!.id };
}

/**
 * Queues the playground graph export for a newly registered base model, unless it came with
 * its own onnx/ files or is above PLAYGROUND_MAX_PARAMETERS (the playground rejects it anyway).
 * Returns the job id, or null when nothing was queued.
 */
export async function queuePlaygroundGraph(db: Db, input: { baseModelId: string; namespaceId: string; createdBy: string }): Promise<string | null> {
  const base = await getBaseModel(db, input.baseModelId);
  if (base.files.some((file) => file.path.startsWith(GRAPH_PREFIX))) return null;
  if (base.parameterCount > getEnv().PLAYGROUND_MAX_PARAMETERS) {
    logger.info({ baseModelId: base.id, parameterCount: base.parameterCount }, 'playground graph export skipped: base model above PLAYGROUND_MAX_PARAMETERS');
    return null;
  }
  return (await createBaseExportJob(db, input)).jobId;
}

interface ManifestFile { path: string; size: number; sha256: string }

/**
 * Checks that the manifest the worker wrote lists exactly the uploaded files (besides
 * manifest.json itself) with the same sizes and checksums; returns the problems found.
 */
export function compareManifestFiles(manifest: Record<string, unknown>, uploaded: UploadFile[]): string[] {
  const listed = Array.isArray(manifest.files) ? (manifest.files as ManifestFile[]) : null;
  if (!listed) return ['the manifest has no files list'];
  const problems: string[] = [];
  const byPath = new Map(uploaded.map((file) => [file.path, file]));
  for (const entry of listed) {
    const file = byPath.get(entry.path);
    if (!file) problems.push(`${entry.path} is in the manifest but was not uploaded`);
    else if (file.size !== entry.size || file.sha256 !== entry.sha256) problems.push(`${entry.path} was uploaded with size ${file.size} and sha256 ${file.sha256}, but the manifest lists ${entry.size} and ${entry.sha256}`);
  }
  for (const file of uploaded) {
    if (file.path !== 'manifest.json' && !listed.some((entry) => entry.path === file.path)) problems.push(`${file.path} was uploaded but is not in the manifest`);
  }
  if (!byPath.has('manifest.json')) problems.push('manifest.json was not uploaded');
  return problems;
}

/** Records a finished export's bundle and report; idempotent through the unique job id. */
export async function recordEdgeExport(db: Db, job: typeof jobs.$inferSelect, input: { files: UploadFile[]; summary: Record<string, unknown>; report: EdgeReport | undefined }) {
  const params = job.params as unknown as ExportParams;
  const manifest = input.summary.manifest as Record<string, unknown> | undefined;
  if (!manifest || typeof manifest !== 'object') throw badRequest('a finished export must carry its manifest in summary.manifest');
  const problems = compareManifestFiles(manifest, input.files);
  if (problems.length > 0) throw badRequest(`the edge bundle does not match its manifest: ${problems.join('; ')}`);
  const files = await verifyFiles(db, input.files);
  if (params.adapterVersionId === null) {
    await recordBaseGraph(db, job, files);
    return;
  }
  await db.insert(edgeExports).values({
    versionId: params.adapterVersionId, jobId: job.id, manifest,
    files: files.map(({ path, size, sha256 }) => ({ path, size, sha256 })),
    report: (input.report ?? null) as Record<string, unknown> | null,
  }).onConflictDoNothing();
  logger.info({ jobId: job.id, adapterVersionId: params.adapterVersionId, files: files.length }, 'edge export recorded');
}

/**
 * Stores a base model's exported graph as its onnx/ files, replacing any earlier graph. The
 * row lock keeps a concurrent re-registration from losing either update.
 */
async function recordBaseGraph(db: Db, job: typeof jobs.$inferSelect, files: { path: string; size: number; sha256: string }[]) {
  await db.transaction(async (tx) => {
    const [base] = await tx.select({ files: baseModels.files }).from(baseModels).where(eq(baseModels.id, job.baseModelId)).for('update');
    if (!base) throw notFound(`base model ${JSON.stringify(job.baseModelId)}`);
    const kept = base.files.filter((file) => !file.path.startsWith(GRAPH_PREFIX));
    const graph = files.map(({ path, size, sha256 }) => ({ path: `${GRAPH_PREFIX}${path}`, size, sha256 }));
    await tx.update(baseModels).set({ files: [...kept, ...graph] }).where(eq(baseModels.id, job.baseModelId));
  });
  logger.info({ jobId: job.id, baseModelId: job.baseModelId, files: files.length }, 'playground graph stored with the base model');
}

/** The newest edge bundle of a version with its report, and the newest export job, for the version page. */
export async function getEdge(db: Db, reader: Reader, input: { namespace: string; name: string; version?: number }) {
  const page = await getAdapterPage(db, reader, input.namespace, input.name, input.version);
  const [bundle] = await db.select().from(edgeExports).where(eq(edgeExports.versionId, page.version.id)).orderBy(desc(edgeExports.id)).limit(1);
  const [job] = await db.select({ id: jobs.id, state: jobs.state, error: jobs.error, createdAt: jobs.createdAt }).from(jobs)
    .where(and(eq(jobs.kind, 'export'), sql`(${jobs.params}->>'adapterVersionId')::int = ${page.version.id}`)).orderBy(desc(jobs.createdAt)).limit(1);
  return {
    versionId: page.version.id,
    version: page.version.version,
    latestJob: job ?? null,
    bundle: bundle ? {
      jobId: bundle.jobId, createdAt: bundle.createdAt, files: bundle.files, manifest: bundle.manifest,
      report: bundle.report as EdgeReport | null,
    } : null,
  };
}

/** Presigns a download of one file of a version's newest edge bundle. */
export async function edgeDownloadUrl(db: Db, reader: Reader, input: { namespace: string; name: string; version?: number; path: string }) {
  const edge = await getEdge(db, reader, input);
  if (!edge.bundle) throw notFound(`an edge bundle of ${input.namespace}/${input.name} version ${edge.version}; request an export first`);
  const file = edge.bundle.files.find((entry) => entry.path === input.path);
  if (!file) throw notFound(`file ${input.path} in the edge bundle of ${input.namespace}/${input.name} version ${edge.version}`);
  return { url: await presignGet(await blobObjectKey(db, file.sha256), `${input.name}-v${edge.version}-${file.path}`), size: file.size, sha256: file.sha256 };
}
