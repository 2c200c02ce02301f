import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';

const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');

const schema = z.object({
  APP_URL: z.string().url({ message: 'APP_URL must be the app base URL, e.g. http://127.0.0.1:3000' }),
  RUNNER_TOKEN: z.string().startsWith('amr_', { message: 'RUNNER_TOKEN must be a runner token (amr_…); an admin creates one with `npm run cli -- runner-token NAME`' }),
  RUNNER_NAME: z.string().default(os.hostname()),
  RUNNER_WORK_DIR: z.string().default(path.join(repoRoot, '.data', 'runner', 'work')),
  RUNNER_CACHE_DIR: z.string().default(path.join(repoRoot, '.data', 'runner', 'cache')),
  WORKER_PYTHON: z.string().default(path.join(repoRoot, '.venv', 'bin', 'python')),
  // Base models kept on disk, least recently used deleted first beyond this size (gigabytes, 10^9 bytes).
  RUNNER_CACHE_MAX_GB: z.coerce.number().positive().default(100),
  // Memory offered to jobs on a CPU runner, in gigabytes (10^9 bytes); default: all of the machine's RAM.
  RUNNER_MEMORY_GB: z.coerce.number().positive().optional(),
  // 'fork': a fork server imports torch once and forks each job (starts in milliseconds);
  // 'spawn': a fresh Python process per job (pays seconds of imports each time).
  RUNNER_WORKER_MODE: z.enum(['fork', 'spawn']).default('fork'),
  // Processes for data-parallel fine-tuning under torchrun; default: one per GPU (1 without
  // GPUs). More than 1 on a CPU machine splits the cores, which helps only large machines.
  RUNNER_DATA_PARALLEL: z.coerce.number().int().positive().optional(),
  // Seconds between claim attempts while the queue is empty.
  RUNNER_POLL_SECONDS: z.coerce.number().positive().default(2),
  // Seconds the worker gets to checkpoint after SIGTERM before SIGKILL.
  RUNNER_KILL_GRACE_SECONDS: z.coerce.number().positive().default(20),
  // A fine-tune uploads a checkpoint this often, so a lost machine costs at most this much training.
  RUNNER_CHECKPOINT_SECONDS: z.coerce.number().positive().default(600),
  // Also checkpoint every this many steps (unset: by time only); tests use it for determinism.
  RUNNER_CHECKPOINT_STEPS: z.coerce.number().int().positive().optional(),
  // Port of the Prometheus /metrics endpoint (0: off) and the address it listens on.
  RUNNER_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(0),
  RUNNER_METRICS_HOST: z.string().default('127.0.0.1'),
  // Exit after this many jobs (0: never); tests use it to run one job per process.
  RUNNER_MAX_JOBS: z.coerce.number().int().min(0).default(0),
});

export type RunnerConfig = z.infer<typeof schema> & { workerDir: string };

export function loadConfig(env: NodeJS.ProcessEnv = process.env): RunnerConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`);
    throw new Error(`invalid runner configuration:\n${lines.join('\n')}`);
  }
  return { ...parsed.data, workerDir: path.join(repoRoot, 'gpu-runner') };
}
