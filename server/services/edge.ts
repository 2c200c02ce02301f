import { and, desc, eq, sql } from 'drizzle-orm';
import { adapters, benchmarkTasks, edgeExports, jobs } from '@/drizzle/schema';
import type { EdgeReport } from '../contracts/runner';
import type { Db } from '../db';
import { getEnv } from '../env';
import { logger } from '../logger';
import { presignGet } from '../storage';
import { getAdapterPage } from './adapters';
import type { Reader } from './visibility';
import { getBaseModel } from './base-models';
import { badRequest, notFound } from './errors';
import { blobObjectKey, verifyFiles, type UploadFile } from './uploads';

/** Parameters of an export job (stored in jobs.params). */
export interface ExportParams {
  adapterVersionId: number;
  // Domain task whose first `taskLimit` items the edge report scores; null when the adapter's domain has none.
  taskId: string | null;
  taskLimit: number;
  loraInputs: boolean;
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
  await db.insert(edgeExports).values({
    versionId: params.adapterVersionId, jobId: job.id, manifest,
    files: files.map(({ path, size, sha256 }) => ({ path, size, sha256 })),
    report: (input.report ?? null) as Record<string, unknown> | null,
  }).onConflictDoNothing();
  logger.info({ jobId: job.id, adapterVersionId: params.adapterVersionId, files: files.length }, 'edge export recorded');
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
