import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { createClient } from '../../lib/trpc-client';
import { loadConfig } from './config';
import { detectCapabilities } from './capabilities';
import { RunnerMetrics, serveMetrics } from './metrics';
import { runJob, type JobControl } from './run-job';
import { killAllWorkers, prewarmForkServer, shutdownForkServer } from './worker-process';

/**
 * Runs the runner process: registers with its token, then claims and runs one job at a time.
 * It has no database or S3 credentials: every byte moves through presigned URLs.
 */
async function main() {
  const config = loadConfig();
  const log = pino({ level: process.env.LOG_LEVEL ?? 'info', base: { service: 'runner', runner: config.RUNNER_NAME } });
  const client = createClient({ url: config.APP_URL, token: config.RUNNER_TOKEN });

  const capabilities = await detectCapabilities({ cacheDir: config.RUNNER_CACHE_DIR, memoryGb: config.RUNNER_MEMORY_GB });
  const dataParallel = config.RUNNER_DATA_PARALLEL ?? Math.max(1, capabilities.gpus.length);
  const hardware = () => `${os.cpus()[0]?.model ?? 'unknown CPU'} × ${os.cpus().length}`;

  const { runnerId } = await client.runner.register.mutate({ name: config.RUNNER_NAME, capabilities });
  const runnerLog = log.child({ runnerId });
  runnerLog.info({ app: config.APP_URL, capabilities }, 'runner registered');

  if (config.RUNNER_WORKER_MODE === 'fork') prewarmForkServer(config.WORKER_PYTHON, config.workerDir, (line) => runnerLog.info({ line }, 'worker output'));

  const metrics = new RunnerMetrics();
  const metricsServer = config.RUNNER_METRICS_PORT > 0 ? serveMetrics(metrics, config.RUNNER_NAME, config.RUNNER_METRICS_PORT, config.RUNNER_METRICS_HOST, runnerLog) : null;

  const state: { draining: boolean; job: JobControl | null } = { draining: false, job: null };
  process.on('SIGTERM', () => {
    if (state.draining) {
      killAllWorkers();
      process.exit(143);
    }
    state.draining = true;
    runnerLog.info('SIGTERM: checkpointing the current job and giving it back to the queue; send SIGTERM again to exit now');
    state.job?.drain?.();
  });
  process.on('SIGINT', () => {
    killAllWorkers();
    process.exit(130);
  });

  let completed = 0;
  let failures = 0;
  while (!state.draining) {
    let claimed;
    try {
      claimed = (await client.runner.claim.mutate({ runnerId })).job;
      metrics.claims++;
      failures = 0;
    } catch (error) {
      metrics.claimErrors++;
      failures++;
      const delay = Math.min(30_000, 500 * 2 ** failures) * (0.5 + Math.random() / 2);
      runnerLog.warn({ err: error, retryInMs: Math.round(delay) }, 'claim failed; retrying');
      await sleep(delay);
      continue;
    }
    if (!claimed) {
      await sleep(config.RUNNER_POLL_SECONDS * 1000);
      continue;
    }

    const jobLog = runnerLog.child({ jobId: claimed.jobId, attempt: claimed.attempt, kind: claimed.kind });
    jobLog.info('job claimed');
    state.job = {};
    // A SIGTERM that arrived during the claim call drains this job as soon as it starts.
    if (state.draining) setImmediate(() => state.job?.drain?.());
    metrics.running = 1;
    const started = Date.now();
    const outcome = await runJob({ client, config, job: claimed, log: jobLog, hardware, control: state.job, dataParallel, onHeartbeat: () => { metrics.lastHeartbeat = Date.now(); } });
    metrics.running = 0;
    metrics.jobEnded(outcome, (Date.now() - started) / 1000);
    state.job = null;
    completed++;
    if (config.RUNNER_MAX_JOBS > 0 && completed >= config.RUNNER_MAX_JOBS) break;
  }
  metricsServer?.close();
  shutdownForkServer();
  runnerLog.info({ completed }, 'runner stopped');
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
