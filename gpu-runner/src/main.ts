import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { createClient } from '../../lib/trpc-client';
import { loadConfig } from './config';
import { runJob } from './run-job';
import { killAllWorkers } from './worker-process';

/**
 * Runs the runner process: registers with its token, then claims and runs one job at a time.
 * It has no database or S3 credentials: every byte moves through presigned URLs.
 */
async function main() {
  const config = loadConfig();
  const log = pino({ level: process.env.LOG_LEVEL ?? 'info', base: { service: 'runner', runner: config.RUNNER_NAME } });
  const client = createClient({ url: config.APP_URL, token: config.RUNNER_TOKEN });

  // NOTE: GPU discovery is not done here yet: the worker itself picks CUDA when torch detects a GPU.
  const capabilities = { cpuOnly: true, gpus: [], bf16: false, hostname: os.hostname() };
  const hardware = () => `${os.cpus()[0]?.model ?? 'unknown CPU'} × ${os.cpus().length}`;

  const { runnerId } = await client.runner.register.mutate({ name: config.RUNNER_NAME, capabilities });
  const runnerLog = log.child({ runnerId });
  runnerLog.info({ app: config.APP_URL }, 'runner registered');

  const state = { draining: false };
  process.on('SIGTERM', () => {
    if (state.draining) {
      killAllWorkers();
      process.exit(143);
    }
    state.draining = true;
    runnerLog.info('SIGTERM: finishing the current job, then exiting; send SIGTERM again to exit now');
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
      failures = 0;
    } catch (error) {
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
    await runJob({ client, config, job: claimed, log: jobLog, hardware });
    completed++;
    if (config.RUNNER_MAX_JOBS > 0 && completed >= config.RUNNER_MAX_JOBS) break;
  }
  runnerLog.info({ completed }, 'runner stopped');
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
