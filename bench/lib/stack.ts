/**
 * Starts and stops what a benchmark runs against: SeaweedFS through scripts/seaweedfs.sh and
 * the production build of the app (`next start`). Every process started here is stopped by
 * its own PID or process group, on normal exit, on an error and on Ctrl-C.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { openSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';

export const root = path.resolve(import.meta.dirname, '..', '..');

export interface S3Settings {
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
}

const stops: (() => void)[] = [];
let handlersInstalled = false;

/** Runs every registered stop function once, newest first. */
function stopAll(): void {
  while (stops.length > 0) {
    try {
      stops.pop()!();
    } catch (error) {
      console.error(`stopping a benchmark process failed: ${(error as Error).message}`);
    }
  }
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', stopAll);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      stopAll();
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  }
}

/** Registers a function that stops a child process when the benchmark exits for any reason. */
export function onExit(stop: () => void): void {
  installHandlers();
  stops.push(stop);
}

/** Fails unless `.next/BUILD_ID` exists, because `next start` serves only a finished build. */
export async function requireBuild(): Promise<void> {
  try {
    await fs.access(path.join(root, '.next', 'BUILD_ID'));
  } catch {
    throw new Error('no production build in .next; run `npx next build` first');
  }
}

/** Starts SeaweedFS with one bucket and one access key on 127.0.0.1:`port`; data lives in `dir`. */
export function startSeaweedFs(dir: string, port: number, s3: Omit<S3Settings, 'endpoint'>): S3Settings {
  const pidFile = path.join(dir, 'weed.pid');
  onExit(() => execFileSync(path.join(root, 'scripts', 'stop-pid.sh'), [pidFile]));
  execFileSync(path.join(root, 'scripts', 'seaweedfs.sh'), [dir, String(port), s3.bucket, s3.accessKeyId, s3.secretAccessKey], { stdio: ['ignore', 'ignore', 'inherit'] });
  return { ...s3, endpoint: `http://127.0.0.1:${port}` };
}

/**
 * Starts `next start` on 127.0.0.1:`port` in its own process group, with its output in
 * `logFile`, and waits until /api/health returns 200 (the first database use applies the migrations).
 */
export async function startApp(options: { port: number; env: Record<string, string>; logFile: string }): Promise<string> {
  const url = `http://127.0.0.1:${options.port}`;
  const log = openSync(options.logFile, 'w');
  const app: ChildProcess = spawn(path.join(root, 'node_modules', '.bin', 'next'), ['start', '-p', String(options.port), '-H', '127.0.0.1'], {
    env: { ...process.env, NODE_ENV: 'production', NEXTAUTH_URL: url, ...options.env },
    stdio: ['ignore', log, log],
    detached: true,
    cwd: root,
  });
  onExit(() => {
    if (app.pid && app.exitCode === null && app.signalCode === null) {
      try {
        process.kill(-app.pid, 'SIGTERM');
      } catch {
        // The group is already gone.
      }
    }
  });

  // A new migration on a large table (an index or a generated column) can take minutes.
  const deadline = Date.now() + 600_000;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (app.exitCode !== null) throw new Error(`the app exited with code ${app.exitCode}; see ${options.logFile}`);
    try {
      const response = await fetch(`${url}/api/health`);
      if (response.ok) return url;
      last = `HTTP ${response.status}: ${(await response.text()).slice(0, 200)}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`the app did not become healthy at ${url} within 600 s (${last}); see ${options.logFile}`);
}

/** Stops everything this module started, for callers that finish before the process exits. */
export function stopStack(): void {
  stopAll();
}

/** Returns the CPU model, core count and memory that the benchmark pages record. */
export async function describeMachine(): Promise<{ cpuModel: string; cores: number; memoryGiB: number }> {
  const os = await import('node:os');
  const cpuinfo = await fs.readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  return { cpuModel: model.trim(), cores: os.availableParallelism(), memoryGiB: Math.round(os.totalmem() / 2 ** 30) };
}
