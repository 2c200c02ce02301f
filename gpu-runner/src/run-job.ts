import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { ClaimedJob, CompleteJob } from '../../server/contracts/runner';
import type { EvaluationResult, WorkerEvent } from '../../server/contracts/worker-events';
import type { Client } from '../../lib/trpc-client';
import type { RunnerConfig } from './config';
import { measureEdgeBundle } from './edge-report';
import { download, sha256File, upload } from './files';
import { ensureBaseModel } from './model-cache';
import { launchWorker, type WorkerHandle } from './worker-process';

const CANCEL_POLL_MS = 5000;
const REPORT_INTERVAL_MS = 1000;

class LeaseLost extends Error {}

function isConflict(error: unknown): boolean {
  return (error as { data?: { code?: string } })?.data?.code === 'CONFLICT';
}

/**
 * Runs one claimed job to its end: fetch inputs, run the worker with heartbeats and event
 * reports, upload outputs and report the outcome. Stops the worker when the job is
 * cancelled or the lease is lost. After a lost lease it reports nothing, because the job
 * already belongs to another attempt.
 */
export interface JobControl {
  // Set by runJob: stops the worker so that it checkpoints, then gives the job back to the queue.
  drain?: () => void;
}

export type JobOutcome = 'succeeded' | 'failed' | 'cancelled' | 'released' | 'lease-lost';

export async function runJob(options: {
  client: Client; config: RunnerConfig; job: ClaimedJob; log: Logger; hardware: () => string; control?: JobControl; onHeartbeat?: () => void;
  // Processes this runner offers a data-parallel fine-tune (one per GPU); 1 trains in one process.
  dataParallel?: number;
}): Promise<JobOutcome> {
  const { client, config, job, log } = options;
  const lease = { jobId: job.jobId, leaseToken: job.leaseToken };
  const workDir = path.join(config.RUNNER_WORK_DIR, `${job.jobId}-${job.attempt}`);
  await fs.rm(workDir, { recursive: true, force: true });
  await fs.mkdir(workDir, { recursive: true });

  const pending: WorkerEvent[] = [];
  let leaseLost = false;
  let cancelled = false;
  let finished: Extract<WorkerEvent, { type: 'finished' }> | null = null;
  let failed: Extract<WorkerEvent, { type: 'failed' }> | null = null;
  let hardware = options.hardware();
  let versions: Record<string, string> = {};
  let worker: WorkerHandle | null = null;
  let draining = false;
  // When the lease was last renewed (claim or heartbeat), in milliseconds since the epoch.
  let lastLeaseRenewal = Date.now();
  // Checkpoint uploads run one after another; a newer checkpoint waits for the one in flight.
  let checkpointUpload: Promise<void> = Promise.resolve();
  let uploadedStep = job.finetune?.checkpoint?.step ?? 0;

  if (options.control) {
    options.control.drain = () => {
      if (draining) return;
      draining = true;
      log.info('draining: asking the worker to checkpoint, then releasing the job');
      worker?.stop(config.RUNNER_KILL_GRACE_SECONDS);
    };
  }

  const uploadCheckpoint = (step: number, folder: string) => {
    const snapshot = path.join(workDir, `checkpoint-upload-${step}`);
    // Copy first: the worker rewrites its checkpoint folder at the next save. The result is
    // handled at once, because the upload chain may await it only later.
    const copied = fs.cp(folder, snapshot, { recursive: true }).then(() => true, (error: unknown) => {
      log.warn({ err: error, step }, 'checkpoint copy failed; this checkpoint is skipped');
      return false;
    });
    checkpointUpload = checkpointUpload.then(async () => {
      try {
        if (!(await copied) || step <= uploadedStep || leaseLost) return;
        const files = await uploadFolder(client, lease, snapshot);
        await client.runner.checkpoint.mutate({ ...lease, step, files });
        uploadedStep = step;
        log.info({ step, files: files.length }, 'checkpoint uploaded');
      } catch (error) {
        if (isConflict(error)) leaseLost = true;
        // A failed checkpoint upload costs only resumability; training goes on.
        log.warn({ err: error, step }, 'checkpoint upload failed');
      } finally {
        await fs.rm(snapshot, { recursive: true, force: true });
      }
    });
  };

  // Retries a call to the app with backoff and jitter until the lease would have run out, so a
  // short outage of the app does not lose a finished job. CONFLICT (lease lost) is not retried.
  const whileLeased = async <T,>(call: () => Promise<T>): Promise<T> => {
    const deadline = lastLeaseRenewal + job.leaseSeconds * 1000;
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await call();
      } catch (error) {
        if (isConflict(error) || Date.now() >= deadline) throw error;
        log.warn({ err: error, attempt }, 'call to the app failed; retrying while the lease lasts');
        await sleep(Math.min(5000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2));
      }
    }
  };

  const heartbeat = async () => {
    try {
      const answer = await client.runner.heartbeat.mutate(lease);
      lastLeaseRenewal = Date.now();
      options.onHeartbeat?.();
      if (answer.cancel && !cancelled) {
        cancelled = true;
        log.info('cancellation requested; stopping the worker');
        worker?.stop(config.RUNNER_KILL_GRACE_SECONDS);
      }
    } catch (error) {
      if (isConflict(error)) {
        leaseLost = true;
        log.warn('lease lost; stopping the worker without reporting');
        worker?.stop(config.RUNNER_KILL_GRACE_SECONDS);
      } else {
        // The app may be briefly unreachable; the next beat retries while the lease lasts.
        log.warn({ err: error }, 'heartbeat failed; retrying at the next beat');
      }
    }
  };
  const flush = async () => {
    if (pending.length === 0 || leaseLost) return;
    const batch = pending.splice(0, 200);
    try {
      await client.runner.report.mutate({ ...lease, events: batch });
    } catch (error) {
      if (isConflict(error)) leaseLost = true;
      else {
        pending.unshift(...batch);
        log.warn({ err: error, events: batch.length }, 'event report failed; will retry');
      }
    }
  };

  // The heartbeat also carries cancellation, so it runs at least every 5 s whatever the lease:
  // a cancelled worker then gets SIGTERM within 5 s and stops after its current step.
  const beat = setInterval(heartbeat, Math.min(CANCEL_POLL_MS, Math.max(1000, (job.leaseSeconds * 1000) / 3)));
  const reporter = setInterval(flush, REPORT_INTERVAL_MS);
  try {
    const baseDir = await ensureBaseModel(config.RUNNER_CACHE_DIR, job.baseModel.id, job.baseModel.files, config.RUNNER_CACHE_MAX_GB * 1e9, log);
    const spec: Record<string, unknown> = { jobId: job.jobId, kind: job.kind, workDir, baseModel: { id: job.baseModel.id, path: baseDir } };

    if (job.finetune) {
      const datasetPath = path.join(workDir, 'data.jsonl');
      await download(job.finetune.dataset, datasetPath);
      const finetune: Record<string, unknown> = {
        datasetPath, outputDir: path.join(workDir, 'adapter'), hyperparameters: job.finetune.hyperparameters,
        checkpointEverySeconds: config.RUNNER_CHECKPOINT_SECONDS, checkpointEverySteps: config.RUNNER_CHECKPOINT_STEPS ?? null,
      };
      if (job.finetune.checkpoint) {
        const resumeDir = path.join(workDir, 'resume');
        for (const file of job.finetune.checkpoint.files) await download(file, path.join(resumeDir, file.path));
        finetune.resumeFrom = resumeDir;
        log.info({ step: job.finetune.checkpoint.step }, 'resuming from the last checkpoint');
      }
      spec.finetune = finetune;
    } else if (job.evaluate) {
      const taskPath = path.join(workDir, 'task.jsonl');
      await download(job.evaluate.task.file, taskPath);
      const subjects = [];
      for (const subject of job.evaluate.subjects) {
        if (!subject.adapterFiles) {
          subjects.push({ key: subject.key });
          continue;
        }
        const adapterPath = path.join(workDir, subject.key.replace(/[^A-Za-z0-9._-]/g, '_'));
        for (const file of subject.adapterFiles) await download(file, path.join(adapterPath, file.path));
        subjects.push({ key: subject.key, adapterPath });
      }
      const { id, limit, numFewshot, seed } = job.evaluate.task;
      spec.evaluate = { task: { name: id, path: taskPath, limit, numFewshot, seed }, subjects };
    } else if (job.export) {
      const adapterPath = path.join(workDir, 'adapter');
      for (const file of job.export.adapterFiles) await download(file, path.join(adapterPath, file.path));
      let task: Record<string, unknown> | null = null;
      if (job.export.task) {
        const taskPath = path.join(workDir, 'task.jsonl');
        await download(job.export.task.file, taskPath);
        task = { name: job.export.task.id, path: taskPath, limit: job.export.task.limit };
      }
      spec.export = {
        outputDir: path.join(workDir, 'edge'), referenceDir: path.join(workDir, 'edge-reference'),
        adapterPath: job.export.adapterFiles.length > 0 ? adapterPath : null, loraInputs: job.export.loraInputs, merged: job.export.merged,
        maxRank: job.export.maxRank, task, generateTokens: job.export.generateTokens,
      };
    }

    const specPath = path.join(workDir, 'spec.json');
    await fs.writeFile(specPath, JSON.stringify(spec, null, 2));
    log.info({ workDir }, 'starting worker');
    const workerStarted = Date.now();

    worker = await launchWorker({
      python: config.WORKER_PYTHON,
      cwd: config.workerDir,
      specPath,
      mode: config.RUNNER_WORKER_MODE,
      processes: job.finetune && job.finetune.hyperparameters.dataParallel !== false ? options.dataParallel ?? 1 : 1,
      onEvent: (event) => {
        if (event.type === 'finished') finished = event;
        else if (event.type === 'failed') failed = event;
        else if (event.type === 'checkpoint') uploadCheckpoint(event.step, event.path);
        else if (event.type === 'started') {
          hardware = `${event.hardware} (${event.device}, ${event.dtype})`;
          versions = event.versions;
        }
        pending.push(event);
      },
      onLog: (line) => log.debug({ line }, 'worker output'),
    });
    if (cancelled || leaseLost || draining) worker.stop(config.RUNNER_KILL_GRACE_SECONDS);
    const exit = await worker.done;
    log.info({ exit }, 'worker exited');
    await checkpointUpload;
    clearInterval(reporter);
    await flush();
    if (leaseLost) throw new LeaseLost();
    if (draining && !cancelled && !(finished && exit.code === 0)) {
      const released = await whileLeased(() => client.runner.release.mutate({ ...lease, reason: `runner ${config.RUNNER_NAME} drained (checkpoint after step ${uploadedStep})` }));
      log.info({ state: released.state, checkpointStep: uploadedStep }, 'job released to the queue');
      return 'released';
    }

    let outcome: CompleteJob['outcome'];
    const finishedEvent = finished as Extract<WorkerEvent, { type: 'finished' }> | null;
    const failedEvent = failed as Extract<WorkerEvent, { type: 'failed' }> | null;
    if (cancelled) {
      outcome = { status: 'cancelled', message: 'cancelled by the user; the worker stopped at a step boundary' };
    } else if (finishedEvent && exit.code === 0) {
      // Library versions come with the `started` event; the lineage needs them beside the summary.
      // An evaluation's summary has no wall time of its own; the runner measures the worker's.
      const wallSeconds = finishedEvent.summary.wallSeconds ?? (Date.now() - workerStarted) / 1000;
      outcome = { status: 'succeeded', summary: { ...finishedEvent.summary, versions, wallSeconds }, hardware };
      if (job.kind === 'finetune') outcome.files = await whileLeased(() => uploadOutputs(client, lease, path.join(workDir, 'adapter')));
      else if (job.kind === 'export') {
        // The report is measured here, with the runtime edge devices use, before the bundle is
        // uploaded. It compares the merged graphs, so a lora-inputs-only export has none.
        if (job.export?.merged !== false) {
          outcome.edgeReport = await measureEdgeBundle({ bundleDir: path.join(workDir, 'edge'), referenceDir: path.join(workDir, 'edge-reference'), log });
        }
        outcome.files = await whileLeased(() => uploadOutputs(client, lease, path.join(workDir, 'edge')));
      } else outcome.results = (finishedEvent.summary.results ?? []) as EvaluationResult[];
    } else {
      outcome = {
        status: 'failed',
        reason: failedEvent?.reason ?? 'crash',
        message: failedEvent?.message ?? `worker exited with ${exit.signal ?? `code ${exit.code}`} without a failure event`,
        logTail: worker.logTail.map((line) => line.slice(0, 2000)),
      };
    }
    const result = await whileLeased(() => client.runner.complete.mutate({ ...lease, outcome }));
    log.info({ state: result.state, resultVersionId: result.resultVersionId }, 'job completed');
    return outcome.status;
  } catch (error) {
    if (error instanceof LeaseLost || isConflict(error)) {
      log.warn('job abandoned after losing its lease');
      return 'lease-lost';
    }
    log.error({ err: error }, 'job failed in the runner');
    await whileLeased(() => client.runner.complete.mutate({
      ...lease,
      outcome: { status: 'failed', reason: 'crash', message: `runner error: ${(error as Error).message}`.slice(0, 4000), logTail: worker?.logTail ?? [] },
    })).catch((reportError: unknown) => log.error({ err: reportError }, 'could not report the failure'));
    return 'failed';
  } finally {
    clearInterval(beat);
    clearInterval(reporter);
    worker?.stop(1);
  }
}

async function uploadOutputs(client: Client, lease: { jobId: string; leaseToken: string }, dir: string) {
  const names = (await fs.readdir(dir)).filter((name) => !name.startsWith('.'));
  const files = [];
  for (const name of names) {
    const full = path.join(dir, name);
    const stat = await fs.stat(full);
    if (stat.isFile()) files.push({ path: name, size: stat.size, sha256: await sha256File(full) });
  }
  const { files: urls } = await client.runner.uploadUrls.mutate({ ...lease, files });
  for (const target of urls) {
    const file = files.find((f) => f.path === target.path)!;
    await upload(target.url, path.join(dir, file.path), file.size);
  }
  return files;
}

/** Uploads every file under `dir`, keeping relative paths (a checkpoint may have subfolders). */
async function uploadFolder(client: Client, lease: { jobId: string; leaseToken: string }, dir: string) {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  const files = [];
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const full = path.join(entry.parentPath, entry.name);
    const stat = await fs.stat(full);
    files.push({ path: path.relative(dir, full).split(path.sep).join('/'), size: stat.size, sha256: await sha256File(full) });
  }
  const { files: urls } = await client.runner.uploadUrls.mutate({ ...lease, files });
  for (const target of urls) {
    const file = files.find((f) => f.path === target.path)!;
    await upload(target.url, path.join(dir, file.path), file.size);
  }
  return files;
}
