import { randomBytes } from 'node:crypto';
import { and, asc, desc, eq, inArray, lt, sql } from 'drizzle-orm';
import { adapterFiles, adapters, adapterVersions, blobs, jobEvents, jobs, namespaces, runners, type AdapterVisibility } from '@/drizzle/schema';
import type { Capabilities, ClaimedJob, CompleteJob, Hyperparameters, RemoteFile } from '../contracts/runner';
import type { WorkerEvent } from '../contracts/worker-events';
import type { Db } from '../db';
import { getEnv } from '../env';
import { logger } from '../logger';
import { blobKey, presignGet, presignPut } from '../storage';
import { publishAdapterVersion, ADAPTER_NAME } from './adapters';
import { baseModelContextLength, getBaseModel } from './base-models';
import { getDatasetVersion } from './datasets';
import { badRequest, conflict, notFound } from './errors';
import { evaluateNewVersion, DEFAULT_EVAL_SEED, getTask, recordEvaluationResults } from './evaluations';
import { verifyFiles, type UploadFile } from './uploads';
import { recordEdgeExport, type ExportParams } from './edge';
import { preflightFinetune } from './finetune-preflight';
import { recordJobEnded } from './notifications';
import { estimateTrainingMemory, type JobRequirements } from './requirements';

/** Starting points by task difficulty; every value can be edited before starting. alpha = 2 × rank. */
export const presets = {
  minimal: { label: 'Minimal: rank 8', description: 'Output format or style only; the smallest and fastest adapter.', rank: 8, alpha: 16 },
  standard: { label: 'Standard: rank 16', description: 'Most domain adaptation tasks, such as answering in a field\'s terms.', rank: 16, alpha: 32 },
  advanced: { label: 'Advanced: rank 32', description: 'New reasoning patterns or several related tasks in one adapter.', rank: 32, alpha: 64 },
  heavy: { label: 'Heavy: rank 64', description: 'New knowledge or long outputs; more memory and a higher risk of overfitting.', rank: 64, alpha: 128 },
  maximum: { label: 'Maximum: rank 128', description: 'Large data sets far from the base model\'s training; needs many examples to avoid overfitting.', rank: 128, alpha: 256 },
} as const;

export interface FinetuneParams {
  adapterName: string;
  domain: string | null;
  description: string;
  hyperparameters: Hyperparameters;
  // Items per evaluation task for the automatic evaluation after training; null evaluates all.
  evalLimit: number | null;
  // Visibility of the adapter when the job creates it; absent in jobs created before it existed.
  // For an existing adapter it changes the visibility when the new version is published.
  visibility?: AdapterVisibility;
}

export interface EvaluateParams {
  taskId: string;
  taskVersion: number;
  configHash: string;
  limit: number | null;
  // Absent on jobs queued before few-shot settings existed; the worker's defaults apply (0 and 1234).
  numFewshot?: number;
  seed?: number;
  suite?: { id: string; version: number } | null;
  subjects: { key: string; adapterVersionId: number | null }[];
}

async function addEvent(db: Db, jobId: string, attempt: number, type: string, payload: Record<string, unknown>) {
  await db.insert(jobEvents).values({ jobId, attempt, type, payload });
}

export async function createFinetuneJob(db: Db, input: { userId: string; namespaceId: string; datasetVersionId: number; baseModelId: string; params: FinetuneParams }) {
  if (!ADAPTER_NAME.test(input.params.adapterName)) {
    throw badRequest(`adapter name ${JSON.stringify(input.params.adapterName)} is invalid; use 1-96 letters, digits, dot, dash or underscore`);
  }
  const base = await getBaseModel(db, input.baseModelId);
  const dataset = await getDatasetVersion(db, input.datasetVersionId);
  const options = input.params.hyperparameters;
  const problems = preflightFinetune(base, options, await baseModelContextLength(db, base));
  if (problems.length > 0) throw badRequest(problems.join('; '));
  const requirements: JobRequirements = {
    memoryBytes: estimateTrainingMemory(base.parameterCount, base.architecture, options),
    // 4-bit QLoRA and bfloat16 need a CUDA runner; a CPU runner would only fail the job.
    cuda: options.quantization === '4bit' || options.precision === 'bf16',
  };
  if (dataset.namespaceId !== input.namespaceId) throw notFound(`data set version ${input.datasetVersionId}`);

  const [existing] = await db.select({ baseModelId: adapters.baseModelId }).from(adapters)
    .where(and(eq(adapters.namespaceId, input.namespaceId), eq(adapters.name, input.params.adapterName))).limit(1);
  if (existing && existing.baseModelId !== input.baseModelId) {
    throw badRequest(`adapter ${input.params.adapterName} already exists on base model ${existing.baseModelId}; pick that base model or another adapter name`);
  }

  const [job] = await db.insert(jobs).values({
    kind: 'finetune', state: 'validating', namespaceId: input.namespaceId, createdBy: input.userId, baseModelId: input.baseModelId,
    params: { ...input.params, requirements } as unknown as Record<string, unknown>, datasetVersionId: input.datasetVersionId, maxAttempts: getEnv().JOB_MAX_ATTEMPTS,
  }).returning({ id: jobs.id });
  await addEvent(db, job!.id, 0, 'state', { state: 'validating' });

  // The data set was validated when it was uploaded; an invalid one never reaches the queue.
  if (!dataset.version.valid) {
    const message = `data set ${dataset.name} version ${dataset.version.version} failed validation; fix the lines listed in its report and upload it again`;
    await db.update(jobs).set({ state: 'failed', error: { reason: 'data_error', message }, finishedAt: sql`now()` }).where(eq(jobs.id, job!.id));
    await recordJobEnded(db, job!.id);
    throw badRequest(message);
  }
  await db.update(jobs).set({ state: 'queued', queuedAt: sql`now()` }).where(eq(jobs.id, job!.id));
  await addEvent(db, job!.id, 0, 'state', { state: 'queued' });
  logger.info({ jobId: job!.id, kind: 'finetune' }, 'job queued');
  return { jobId: job!.id };
}

/**
 * Sends jobs whose lease ran out back to the queue, or fails them once they used every
 * attempt. Runs before each claim and job read, so no timer process is needed.
 */
export async function expireLeases(db: Db): Promise<void> {
  const expired = await db.update(jobs).set({
    state: sql`case when ${jobs.cancelRequested} then 'cancelled' when ${jobs.attempts} >= ${jobs.maxAttempts} then 'failed' else 'queued' end`,
    error: sql`case when ${jobs.cancelRequested} or ${jobs.attempts} < ${jobs.maxAttempts} then null
      else jsonb_build_object('reason', 'timeout', 'message', 'the runner stopped sending heartbeats on each of ' || ${jobs.attempts} || ' attempts') end`,
    queuedAt: sql`now()`,
    finishedAt: sql`case when ${jobs.cancelRequested} or ${jobs.attempts} >= ${jobs.maxAttempts} then now() else null end`,
    runnerId: null,
  }).where(and(eq(jobs.state, 'running'), lt(jobs.leaseExpiresAt, sql`now()`))).returning({ id: jobs.id, state: jobs.state, attempts: jobs.attempts });

  for (const job of expired) {
    logger.warn({ jobId: job.id, attempts: job.attempts, state: job.state }, 'lease expired');
    await addEvent(db, job.id, job.attempts, 'state', { state: job.state, reason: 'lease expired' });
    if (job.state !== 'queued') await recordJobEnded(db, job.id);
  }
}

export async function registerRunner(db: Db, tokenId: string, name: string, capabilities: Record<string, unknown>) {
  const [runner] = await db.insert(runners).values({ tokenId, name, capabilities }).returning({ id: runners.id });
  logger.info({ runnerId: runner!.id, name }, 'runner registered');
  return { runnerId: runner!.id };
}

/**
 * Presigns GETs for blobs, with one query for all their object keys and sizes, because a claim
 * hands out a dozen files and a query per file made claims slower. A null size is taken from
 * the blob row.
 */
async function remoteFiles(db: Db, files: { path: string; sha256: string; size: number | null }[]): Promise<RemoteFile[]> {
  if (files.length === 0) return [];
  const rows = await db.select({ sha256: blobs.sha256, s3Key: blobs.s3Key, size: blobs.size }).from(blobs)
    .where(inArray(blobs.sha256, [...new Set(files.map((file) => file.sha256))]));
  const found = new Map(rows.map((row) => [row.sha256, row]));
  return Promise.all(files.map(async (file) => {
    const row = found.get(file.sha256);
    const size = file.size ?? row?.size;
    if (size === undefined) throw notFound(`blob ${file.sha256} of ${file.path}`);
    return { path: file.path, sha256: file.sha256, size, url: await presignGet(row?.s3Key ?? blobKey(file.sha256)) };
  }));
}

/** Claims the oldest queued job under a fresh lease; SKIP LOCKED keeps concurrent runners apart. */
export async function claimJob(db: Db, tokenId: string, runnerId: string): Promise<ClaimedJob | null> {
  const [runner] = await db.update(runners).set({ lastSeenAt: sql`now()` }).where(and(eq(runners.id, runnerId), eq(runners.tokenId, tokenId))).returning();
  if (!runner) throw notFound(`runner ${runnerId} for this token; register again`);
  await expireLeases(db);

  const leaseSeconds = getEnv().JOB_LEASE_SECONDS;
  const leaseToken = randomBytes(18).toString('base64url');
  // A runner takes only jobs whose estimated memory fits its largest GPU (or its RAM when it
  // has none), and CUDA-only jobs only when it has a GPU.
  const offered = runner.capabilities as Capabilities;
  const memory = offered.gpus.length > 0 ? Math.max(...offered.gpus.map((gpu) => gpu.memoryBytes)) : offered.memoryBytes ?? Number.MAX_SAFE_INTEGER;
  const fits = and(
    sql`coalesce((${jobs.params}->'requirements'->>'memoryBytes')::float8, 0) <= ${memory}`,
    offered.gpus.length > 0 ? undefined : sql`coalesce((${jobs.params}->'requirements'->>'cuda')::boolean, false) = false`,
  );
  const claimed = await db.transaction(async (tx) => {
    const [next] = await tx.select({ id: jobs.id }).from(jobs).where(and(eq(jobs.state, 'queued'), fits))
      .orderBy(asc(jobs.queuedAt)).limit(1).for('update', { skipLocked: true });
    if (!next) return null;
    const [job] = await tx.update(jobs).set({
      state: 'running', attempts: sql`${jobs.attempts} + 1`, runnerId, leaseToken,
      leaseExpiresAt: sql`now() + make_interval(secs => ${leaseSeconds})`, startedAt: sql`coalesce(${jobs.startedAt}, now())`,
    }).where(eq(jobs.id, next.id)).returning();
    return job!;
  });
  if (!claimed) return null;

  await addEvent(db, claimed.id, claimed.attempts, 'state', { state: 'running', runnerId, attempt: claimed.attempts });
  logger.info({ jobId: claimed.id, runnerId, attempt: claimed.attempts }, 'job claimed');

  const base = await getBaseModel(db, claimed.baseModelId);
  const spec: ClaimedJob = {
    jobId: claimed.id, kind: claimed.kind, attempt: claimed.attempts, leaseToken, leaseSeconds,
    // The playground's ONNX graph (onnx/ files) is for the app, so runners never download it.
    baseModel: { id: base.id, files: await remoteFiles(db, base.files.filter((file) => !file.path.startsWith('onnx/'))) },
  };

  if (claimed.kind === 'finetune') {
    const params = claimed.params as unknown as FinetuneParams;
    const dataset = await getDatasetVersion(db, claimed.datasetVersionId!);
    const checkpoint = claimed.checkpoint;
    const [datasetFile, ...checkpointFiles] = await remoteFiles(db, [
      { path: 'data.jsonl', sha256: dataset.version.sha256, size: dataset.version.size }, ...(checkpoint?.files ?? []),
    ]);
    spec.finetune = {
      dataset: datasetFile!,
      hyperparameters: params.hyperparameters,
      checkpoint: checkpoint && { step: checkpoint.step, files: checkpointFiles },
    };
    if (checkpoint) await addEvent(db, claimed.id, claimed.attempts, 'log', { level: 'info', message: `resuming from the checkpoint of attempt ${checkpoint.attempt} after step ${checkpoint.step}` });
  } else if (claimed.kind === 'export') {
    const params = claimed.params as unknown as ExportParams;
    const files = params.adapterVersionId === null ? [] : await db.select().from(adapterFiles).where(eq(adapterFiles.versionId, params.adapterVersionId));
    const task = params.taskId ? await getTask(db, params.taskId) : null;
    const [taskFile] = task ? await remoteFiles(db, [{ path: 'task.jsonl', sha256: task.dataSha256, size: null }]) : [];
    spec.export = {
      adapterVersionId: params.adapterVersionId,
      adapterFiles: await remoteFiles(db, files),
      task: task && taskFile ? { id: task.id, file: taskFile, limit: params.taskLimit } : null,
      loraInputs: params.loraInputs, merged: params.merged ?? true, maxRank: params.maxRank, generateTokens: params.generateTokens,
    };
  } else {
    const params = claimed.params as unknown as EvaluateParams;
    const task = await getTask(db, params.taskId);
    const versionIds = params.subjects.flatMap((subject) => (subject.adapterVersionId === null ? [] : [subject.adapterVersionId]));
    const files = versionIds.length ? await db.select().from(adapterFiles).where(inArray(adapterFiles.versionId, versionIds)) : [];
    const [taskFile, ...signed] = await remoteFiles(db, [{ path: 'task.jsonl', sha256: task.dataSha256, size: null }, ...files]);
    const subjects = params.subjects.map((subject) => {
      if (subject.adapterVersionId === null) return { key: subject.key };
      return { key: subject.key, adapterFiles: signed.filter((_, i) => files[i]!.versionId === subject.adapterVersionId) };
    });
    spec.evaluate = {
      task: { id: task.id, version: task.version, file: taskFile!, limit: params.limit, numFewshot: params.numFewshot ?? 0, seed: params.seed ?? DEFAULT_EVAL_SEED },
      subjects,
    };
  }
  return spec;
}

/** Loads a job for a runner call; throws CONFLICT unless the caller still holds its lease. */
async function leasedJob(db: Db, jobId: string, leaseToken: string) {
  const [job] = await db.select().from(jobs).where(eq(jobs.id, jobId)).limit(1);
  if (!job) throw notFound(`job ${jobId}`);
  if (job.leaseToken !== leaseToken) throw conflict(`lease on job ${jobId} was lost to another attempt; stop working on it`);
  return job;
}

export async function heartbeat(db: Db, jobId: string, leaseToken: string) {
  const leaseSeconds = getEnv().JOB_LEASE_SECONDS;
  const [renewed] = await db.update(jobs).set({ leaseExpiresAt: sql`now() + make_interval(secs => ${leaseSeconds})` })
    .where(and(eq(jobs.id, jobId), eq(jobs.leaseToken, leaseToken), eq(jobs.state, 'running'), sql`${jobs.leaseExpiresAt} > now()`))
    .returning({ cancel: jobs.cancelRequested, runnerId: jobs.runnerId });
  if (renewed?.runnerId) await db.update(runners).set({ lastSeenAt: sql`now()` }).where(eq(runners.id, renewed.runnerId));
  if (!renewed) {
    await leasedJob(db, jobId, leaseToken);
    throw conflict(`lease on job ${jobId} expired or the job is no longer running; stop working on it`);
  }
  return { cancel: renewed.cancel, leaseSeconds };
}

export async function reportEvents(db: Db, jobId: string, leaseToken: string, events: WorkerEvent[]) {
  const job = await leasedJob(db, jobId, leaseToken);
  if (job.state !== 'running') throw conflict(`job ${jobId} is ${job.state}; events are accepted only while it runs`);
  if (events.length === 0) return { accepted: 0 };
  await db.insert(jobEvents).values(events.map((event) => ({ jobId, attempt: job.attempts, type: event.type, payload: event as unknown as Record<string, unknown> })));
  const lastProgress = [...events].reverse().find((event) => event.type === 'progress');
  if (lastProgress) await db.update(jobs).set({ progress: lastProgress as unknown as Record<string, unknown> }).where(eq(jobs.id, jobId));
  return { accepted: events.length };
}

/**
 * Records a training checkpoint the runner uploaded (through uploadUrls): every file must be
 * in the store with its size and sha256. A later attempt resumes from the newest one.
 */
export async function saveCheckpoint(db: Db, input: { jobId: string; leaseToken: string; step: number; files: UploadFile[] }) {
  const job = await leasedJob(db, input.jobId, input.leaseToken);
  if (job.state !== 'running') throw conflict(`job ${input.jobId} is ${job.state}; checkpoints are accepted only while it runs`);
  if (job.kind !== 'finetune') throw badRequest(`job ${input.jobId} is an ${job.kind === 'export' ? 'export' : 'evaluation'}; only fine-tunes have checkpoints`);
  if (job.checkpoint && job.checkpoint.step >= input.step) return { step: job.checkpoint.step };
  const files = await verifyFiles(db, input.files);
  const checkpoint = { step: input.step, attempt: job.attempts, files: files.map(({ path, size, sha256 }) => ({ path, size, sha256 })) };
  await db.update(jobs).set({ checkpoint }).where(and(eq(jobs.id, job.id), eq(jobs.leaseToken, input.leaseToken)));
  await addEvent(db, job.id, job.attempts, 'checkpoint-saved', { step: input.step, files: files.length });
  logger.info({ jobId: job.id, step: input.step }, 'checkpoint saved');
  return { step: input.step };
}

/**
 * Gives a running job back to the queue, for a runner that drains before shutting down. The
 * attempt does not count against the job's maximum, because nothing failed.
 */
export async function releaseJob(db: Db, input: { jobId: string; leaseToken: string; reason: string }) {
  const job = await leasedJob(db, input.jobId, input.leaseToken);
  if (job.state !== 'running') return { state: job.state };
  const [released] = await db.update(jobs).set({
    state: 'queued', runnerId: null, leaseToken: null, leaseExpiresAt: null, queuedAt: sql`now()`, maxAttempts: sql`${jobs.maxAttempts} + 1`,
  }).where(and(eq(jobs.id, job.id), eq(jobs.leaseToken, input.leaseToken), eq(jobs.state, 'running'))).returning({ state: jobs.state });
  if (!released) return { state: job.state };
  await addEvent(db, job.id, job.attempts, 'state', { state: 'queued', reason: input.reason, checkpointStep: job.checkpoint?.step ?? null });
  logger.info({ jobId: job.id, reason: input.reason, checkpointStep: job.checkpoint?.step ?? null }, 'job released');
  return { state: 'queued' as const };
}

export async function outputUploadUrls(db: Db, jobId: string, leaseToken: string, files: UploadFile[]) {
  const job = await leasedJob(db, jobId, leaseToken);
  if (job.state !== 'running') throw conflict(`job ${jobId} is ${job.state}; uploads are accepted only while it runs`);
  return Promise.all(files.map(async (file) => ({ path: file.path, url: await presignPut(blobKey(file.sha256), file.size, file.sha256) })));
}

/**
 * Records a runner's outcome. Idempotent: repeating the call with the same lease returns
 * the first result, and a runner whose lease was lost gets CONFLICT.
 */
export async function completeJob(db: Db, input: CompleteJob) {
  const job = await leasedJob(db, input.jobId, input.leaseToken);
  if (job.state !== 'running') {
    return { state: job.state, resultVersionId: job.resultVersionId };
  }
  const { outcome } = input;

  if (outcome.status === 'failed' || outcome.status === 'cancelled') {
    const state = outcome.status;
    const error = outcome.status === 'failed' ? { reason: outcome.reason, message: outcome.message } : { reason: 'cancelled', message: outcome.message };
    const [ended] = await db.update(jobs).set({ state, error, summary: outcome.status === 'failed' ? { logTail: outcome.logTail } : null, finishedAt: sql`now()` })
      .where(and(eq(jobs.id, job.id), eq(jobs.state, 'running'))).returning({ id: jobs.id });
    await addEvent(db, job.id, job.attempts, 'state', { state, ...error });
    logger.info({ jobId: job.id, state, reason: error.reason }, 'job ended');
    if (ended) await recordJobEnded(db, job.id);
    return { state, resultVersionId: null };
  }

  if (job.kind === 'finetune') {
    const params = job.params as unknown as FinetuneParams;
    if (!outcome.files?.length) throw badRequest('a finished fine-tune must list its adapter files');
    const files = await verifyFiles(db, outcome.files);
    const dataset = await getDatasetVersion(db, job.datasetVersionId!);
    const lineage = {
      jobId: job.id,
      // The data set's own lineage carries the CSV mapping, cleaning counts, split and general-data mix.
      dataset: { name: `${dataset.namespace}/${dataset.name}`, version: dataset.version.version, sha256: dataset.version.sha256, lineage: dataset.version.lineage ?? null },
      baseModelId: job.baseModelId,
      hyperparameters: params.hyperparameters,
      versions: outcome.summary.versions ?? null,
      hardware: outcome.hardware,
      wallSeconds: outcome.summary.wallSeconds ?? null,
      trainLoss: outcome.summary.trainLoss ?? null,
      steps: outcome.summary.steps ?? null,
      validationLoss: outcome.summary.validationLoss ?? null,
      attempt: job.attempts,
    };
    const published = await publishAdapterVersion(db, {
      namespaceId: job.namespaceId, name: params.adapterName, baseModelId: job.baseModelId, files, description: params.description,
      domain: params.domain, lineage, sourceJobId: job.id, publishedBy: job.createdBy, visibility: params.visibility,
    });
    const [updated] = await db.update(jobs).set({ state: 'succeeded', resultVersionId: published.versionId, summary: outcome.summary, finishedAt: sql`now()` })
      .where(and(eq(jobs.id, job.id), eq(jobs.state, 'running'))).returning({ id: jobs.id });
    if (updated) {
      await addEvent(db, job.id, job.attempts, 'state', { state: 'succeeded', versionId: published.versionId, version: published.version });
      logger.info({ jobId: job.id, adapterVersionId: published.versionId }, 'fine-tune published');
      await evaluateNewVersion(db, { versionId: published.versionId, parentJobId: job.id, limit: params.evalLimit, createdBy: job.createdBy });
      await recordJobEnded(db, job.id);
    }
    return { state: 'succeeded' as const, resultVersionId: published.versionId };
  }

  if (job.kind === 'export') {
    await recordEdgeExport(db, job, { files: outcome.files ?? [], summary: outcome.summary, report: outcome.edgeReport });
    await db.update(jobs).set({ state: 'succeeded', summary: { ...outcome.summary, edgeReport: outcome.edgeReport ?? null }, finishedAt: sql`now()` })
      .where(and(eq(jobs.id, job.id), eq(jobs.state, 'running')));
    await addEvent(db, job.id, job.attempts, 'state', { state: 'succeeded' });
    logger.info({ jobId: job.id }, 'edge export succeeded');
    return { state: 'succeeded' as const, resultVersionId: null };
  }

  await recordEvaluationResults(db, job, outcome.results ?? [], outcome.hardware, Number(outcome.summary.wallSeconds ?? 0));
  const [evaluated] = await db.update(jobs).set({ state: 'succeeded', summary: outcome.summary, finishedAt: sql`now()` })
    .where(and(eq(jobs.id, job.id), eq(jobs.state, 'running'))).returning({ id: jobs.id });
  await addEvent(db, job.id, job.attempts, 'state', { state: 'succeeded' });
  logger.info({ jobId: job.id }, 'evaluation recorded');
  if (evaluated) await recordJobEnded(db, job.id);
  return { state: 'succeeded' as const, resultVersionId: null };
}

export async function cancelJob(db: Db, jobId: string, namespaceId: string) {
  const [job] = await db.select().from(jobs).where(and(eq(jobs.id, jobId), eq(jobs.namespaceId, namespaceId))).limit(1);
  if (!job) throw notFound(`job ${jobId}`);
  if (job.state === 'queued' || job.state === 'validating') {
    const [cancelled] = await db.update(jobs).set({ state: 'cancelled', finishedAt: sql`now()`, error: { reason: 'cancelled', message: 'cancelled before it started' } })
      .where(and(eq(jobs.id, jobId), inArray(jobs.state, ['queued', 'validating']))).returning({ id: jobs.id });
    if (!cancelled) throw conflict(`job ${jobId} was claimed while cancelling; cancel it again to stop the runner`);
    await addEvent(db, jobId, job.attempts, 'state', { state: 'cancelled' });
    await recordJobEnded(db, jobId);
    return { state: 'cancelled' as const };
  }
  if (job.state === 'running') {
    // The runner learns of it at its next heartbeat, stops the worker and reports `cancelled`.
    await db.update(jobs).set({ cancelRequested: true }).where(eq(jobs.id, jobId));
    await addEvent(db, jobId, job.attempts, 'cancel-requested', {});
    return { state: 'running' as const };
  }
  throw conflict(`job ${jobId} already ended (${job.state})`);
}

/**
 * Queues a cancelled or failed fine-tune again as a new attempt of the same job. The claim
 * hands the runner the job's last checkpoint, so training continues after its step with the
 * same data order and learning-rate schedule. The job gets a fresh allowance of attempts.
 */
export async function resumeJob(db: Db, jobId: string, namespaceId: string) {
  const [job] = await db.select().from(jobs).where(and(eq(jobs.id, jobId), eq(jobs.namespaceId, namespaceId))).limit(1);
  if (!job) throw notFound(`job ${jobId}`);
  if (job.kind !== 'finetune') throw badRequest(`job ${jobId} is an evaluation; only fine-tunes resume, so request the evaluation again`);
  if (job.state !== 'cancelled' && job.state !== 'failed') {
    throw conflict(`job ${jobId} is ${job.state}; only a cancelled or failed fine-tune can resume`);
  }
  if (!job.checkpoint) {
    throw badRequest(`job ${jobId} saved no checkpoint before it ended, so there is nothing to resume; use "Clone and edit" to start it again from step 0`);
  }

  const [resumed] = await db.update(jobs).set({
    state: 'queued', cancelRequested: false, error: null, summary: null, finishedAt: null, runnerId: null, leaseToken: null, leaseExpiresAt: null,
    queuedAt: sql`now()`, maxAttempts: sql`${jobs.attempts} + ${getEnv().JOB_MAX_ATTEMPTS}`,
  }).where(and(eq(jobs.id, jobId), eq(jobs.state, job.state))).returning({ id: jobs.id });
  if (!resumed) throw conflict(`job ${jobId} changed while resuming; reload it and try again`);
  await addEvent(db, jobId, job.attempts, 'state', { state: 'queued', reason: `resumed from the checkpoint after step ${job.checkpoint.step}` });
  logger.info({ jobId, checkpointStep: job.checkpoint.step, previousState: job.state }, 'job resumed');
  return { state: 'queued' as const, checkpointStep: job.checkpoint.step };
}

/**
 * Returns every event of a job as text lines, oldest first, for the log download.
 * NOTE: the text is built in memory, and Lambda caps a response at 6 MB, so a job with
 * hundreds of thousands of events would need a streamed or S3-backed download.
 */
export async function jobLogText(db: Db, jobId: string): Promise<string> {
  const rows = await db.select({ type: jobEvents.type, payload: jobEvents.payload, attempt: jobEvents.attempt, createdAt: jobEvents.createdAt })
    .from(jobEvents).where(eq(jobEvents.jobId, jobId)).orderBy(asc(jobEvents.id));
  return rows.map((row) => {
    const detail = row.type === 'log' ? `${String(row.payload.level)}: ${String(row.payload.message)}` : JSON.stringify(row.payload);
    return `${row.createdAt.toISOString()} [attempt ${row.attempt}] ${row.type} ${detail}`;
  }).join('\n') + (rows.length ? '\n' : '');
}

export async function getJob(db: Db, jobId: string) {
  await expireLeases(db);
  const [row] = await db.select({ job: jobs, namespace: namespaces.name }).from(jobs).innerJoin(namespaces, eq(namespaces.id, jobs.namespaceId)).where(eq(jobs.id, jobId)).limit(1);
  if (!row) throw notFound(`job ${jobId}`);
  const { job } = row;

  const progress = await db.select({ payload: jobEvents.payload, attempt: jobEvents.attempt }).from(jobEvents)
    .where(and(eq(jobEvents.jobId, jobId), eq(jobEvents.type, 'progress'))).orderBy(asc(jobEvents.id));
  const logs = await db.select({ type: jobEvents.type, payload: jobEvents.payload, attempt: jobEvents.attempt, createdAt: jobEvents.createdAt }).from(jobEvents)
    .where(and(eq(jobEvents.jobId, jobId), inArray(jobEvents.type, ['log', 'state', 'started', 'metric', 'checkpoint', 'checkpoint-saved', 'failed', 'finished', 'cancel-requested'])))
    .orderBy(desc(jobEvents.id)).limit(200);

  // State changes and uploaded checkpoints, oldest first, for the page's timeline.
  const timeline = await db.select({ type: jobEvents.type, payload: jobEvents.payload, attempt: jobEvents.attempt, createdAt: jobEvents.createdAt }).from(jobEvents)
    .where(and(eq(jobEvents.jobId, jobId), inArray(jobEvents.type, ['state', 'started', 'checkpoint-saved', 'cancel-requested']))).orderBy(asc(jobEvents.id));
  // Validation losses carry no step, so each takes the step of the progress event before it.
  const validation = await db.select({
    payload: jobEvents.payload, attempt: jobEvents.attempt,
    step: sql<number>`coalesce((select (p.payload->>'step')::int from ${jobEvents} p where p.job_id = ${jobEvents.jobId} and p.type = 'progress' and p.id < ${jobEvents.id} order by p.id desc limit 1), 0)`,
  }).from(jobEvents).where(and(eq(jobEvents.jobId, jobId), eq(jobEvents.type, 'metric'), sql`${jobEvents.payload}->>'name' = 'validationLoss'`)).orderBy(asc(jobEvents.id));

  let result: { namespace: string; name: string; version: number } | null = null;
  if (job.resultVersionId) {
    const [version] = await db.select({ version: adapterVersions.version, name: adapters.name, namespace: namespaces.name }).from(adapterVersions)
      .innerJoin(adapters, eq(adapters.id, adapterVersions.adapterId)).innerJoin(namespaces, eq(namespaces.id, adapters.namespaceId))
      .where(eq(adapterVersions.id, job.resultVersionId)).limit(1);
    result = version ?? null;
  }
  const children = await db.select({ id: jobs.id, kind: jobs.kind, state: jobs.state }).from(jobs).where(eq(jobs.parentJobId, jobId));
  const datasetVersion = job.datasetVersionId ? await getDatasetVersion(db, job.datasetVersionId) : null;
  // The training data and its lineage: CSV mapping, cleaning counts, split and general-data mix.
  const dataset = datasetVersion && {
    id: datasetVersion.version.id, name: `${datasetVersion.namespace}/${datasetVersion.name}`, version: datasetVersion.version.version,
    sha256: datasetVersion.version.sha256, lineage: datasetVersion.version.lineage,
  };

  return {
    id: job.id, kind: job.kind, state: job.state, namespace: row.namespace, namespaceId: job.namespaceId, baseModelId: job.baseModelId, params: job.params,
    attempts: job.attempts, maxAttempts: job.maxAttempts, cancelRequested: job.cancelRequested, progress: job.progress, summary: job.summary,
    error: job.error, createdAt: job.createdAt, startedAt: job.startedAt, finishedAt: job.finishedAt, result, children, dataset,
    checkpoint: job.checkpoint && { step: job.checkpoint.step, attempt: job.checkpoint.attempt },
    lossCurve: progress.filter(({ payload }) => typeof payload.loss === 'number').map(({ payload, attempt }) => ({
      attempt, step: payload.step as number, loss: payload.loss as number, tokensPerSecond: payload.tokensPerSecond as number,
      learningRate: payload.learningRate as number, cpuMemoryBytes: (payload.cpuMemoryBytes as number | undefined) ?? null,
      gpuMemoryBytes: (payload.gpuMemoryBytes as number | undefined) ?? null,
    })),
    validationCurve: validation.map(({ payload, attempt, step }) => ({ attempt, step, loss: payload.value as number })),
    timeline: timeline.map(({ type, payload, attempt, createdAt }) => ({ type, attempt, at: createdAt, state: (payload.state as string | undefined) ?? null, step: (payload.step as number | undefined) ?? null,
      reason: (payload.reason as string | undefined) ?? null, hardware: (payload.hardware as string | undefined) ?? null,
    })),
    checkpoints: timeline.filter((event) => event.type === 'checkpoint-saved').map(({ payload, attempt, createdAt }) => ({ attempt, step: payload.step as number, at: createdAt })),
    events: logs.reverse(),
  };
}

export async function listJobs(db: Db, namespaceId: string) {
  return db.select({ id: jobs.id, kind: jobs.kind, state: jobs.state, params: jobs.params, createdAt: jobs.createdAt, finishedAt: jobs.finishedAt })
    .from(jobs).where(eq(jobs.namespaceId, namespaceId)).orderBy(desc(jobs.createdAt)).limit(100);
}
