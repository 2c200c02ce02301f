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
  // Seconds between claim attempts while the queue is empty.
  RUNNER_POLL_SECONDS: z.coerce.number().positive().default(2),
  // Seconds the worker gets to checkpoint after SIGTERM before SIGKILL.
  RUNNER_KILL_GRACE_SECONDS: z.coerce.number().positive().default(20),
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
