import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import type { Readable } from 'node:stream';
import { workerEvent, type WorkerEvent } from '../../server/contracts/worker-events';

// Pids of live workers (spawned or forked), so the runner can kill them when it must exit at once.
const live = new Set<number>();

/** Lists the children, grandchildren and so on of `pid` (Linux /proc), deepest last. */
function descendants(pid: number): number[] {
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
  return children.flatMap((child) => [child, ...descendants(child)]);
}

/**
 * SIGKILLs every live worker and what it started (torchrun's training processes); used when
 * the runner exits without draining.
 */
export function killAllWorkers(): void {
  for (const pid of live) {
    for (const target of [pid, ...descendants(pid)]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
  forkServer?.close();
}

export interface WorkerExit {
  code: number | null;
  signal: string | null;
}

export interface WorkerHandle {
  pid: number | undefined;
  // Resolves with the exit code (or the signal name) once the worker's output is drained.
  done: Promise<WorkerExit>;
  // The last 100 stderr and unparseable stdout lines, for the failure report.
  logTail: string[];
  stop(graceSeconds: number): void;
}

export interface WorkerOptions {
  python: string;
  cwd: string;
  specPath: string;
  // 'fork': fork from a long-lived `python -m worker serve` that imported torch once;
  // 'spawn': a fresh `python -m worker run` per job (pays the imports every time).
  mode: 'fork' | 'spawn';
  // More than 1: data-parallel training under torchrun with this many processes (one per
  // GPU); always spawned, because torchrun starts its own processes.
  processes?: number;
  onEvent: (event: WorkerEvent) => void;
  onLog: (line: string) => void;
}

/**
 * Starts the Python worker on a spec file and feeds every validated event to `onEvent`.
 * Lines on the event stream that are not valid events are kept as log lines, never trusted.
 * In fork mode a fork server that cannot start makes this job fall back to spawning.
 */
export async function launchWorker(options: WorkerOptions): Promise<WorkerHandle> {
  if (options.mode === 'fork' && (options.processes ?? 1) <= 1) {
    try {
      return await forkWorker(options);
    } catch (error) {
      options.onLog(`fork server unavailable (${(error as Error).message}); spawning the worker instead`);
    }
  }
  return spawnWorker(options);
}

/** Collects log lines and parses event lines, the same way for both modes. */
function outputReader(options: WorkerOptions) {
  const logTail: string[] = [];
  const keep = (line: string) => {
    logTail.push(line);
    if (logTail.length > 100) logTail.shift();
    options.onLog(line);
  };
  const readEvents = (stream: Readable) => new Promise<void>((resolve) => {
    readline.createInterface({ input: stream }).on('line', (line) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        keep(`stdout: ${line}`);
        return;
      }
      const event = workerEvent.safeParse(parsed);
      if (event.success) options.onEvent(event.data);
      else keep(`invalid worker event (${event.error.issues[0]?.message}): ${line.slice(0, 500)}`);
    }).on('close', resolve);
  });
  const readLogs = (stream: Readable) => new Promise<void>((resolve) => {
    readline.createInterface({ input: stream }).on('line', keep).on('close', resolve);
  });
  return { logTail, keep, readEvents, readLogs };
}

/** Sends SIGTERM, then SIGKILL after the grace period, unless the process has exited by then. */
function stopper(pid: () => number | undefined, exited: () => boolean) {
  let killTimer: NodeJS.Timeout | undefined;
  const signal = (name: NodeJS.Signals) => {
    const target = pid();
    if (target === undefined || exited()) return;
    try {
      process.kill(target, name);
    } catch {
      // Already gone.
    }
  };
  return {
    stop(graceSeconds: number) {
      if (exited()) return;
      signal('SIGTERM');
      killTimer = setTimeout(() => signal('SIGKILL'), graceSeconds * 1000);
    },
    clear: () => clearTimeout(killTimer),
  };
}

function spawnWorker(options: WorkerOptions): WorkerHandle {
  const processes = options.processes ?? 1;
  // torchrun forwards SIGTERM to every training process and waits for them, so a stop
  // still ends with rank 0's checkpoint.
  const launcher = processes > 1 ? ['-m', 'torch.distributed.run', '--standalone', `--nproc_per_node=${processes}`] : [];
  const child = spawn(options.python, [...launcher, '-m', 'worker', 'run', '--spec', options.specPath], {
    cwd: options.cwd,
    env: { ...process.env, PYTHONUNBUFFERED: '1', HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid;
  if (pid !== undefined) live.add(pid);
  const reader = outputReader(options);
  const stdoutDone = reader.readEvents(child.stdout!);
  void reader.readLogs(child.stderr!);
  let hasExited = false;
  const exited = new Promise<WorkerExit>((resolve) => {
    child.on('exit', (code, signal) => {
      hasExited = true;
      if (pid !== undefined) live.delete(pid);
      resolve({ code, signal });
    });
    child.on('error', (error) => {
      hasExited = true;
      reader.keep(`failed to start the worker with ${options.python}: ${error.message}`);
      resolve({ code: 127, signal: null });
    });
  });
  const kill = stopper(() => pid, () => hasExited);
  return {
    pid,
    logTail: reader.logTail,
    done: Promise.all([exited, stdoutDone]).then(([exit]) => {
      kill.clear();
      return exit;
    }),
    stop: kill.stop,
  };
}

// Seconds the fork server may take to import torch and transformers before it counts as broken.
const FORK_SERVER_START_SECONDS = 180;
// After a forked worker exits, its sockets get this long to deliver the last lines.
const DRAIN_AFTER_EXIT_MS = 5000;

interface ForkRequest {
  onPid: (pid: number) => void;
  onError: (message: string) => void;
  onExit: (exit: WorkerExit) => void;
}

/**
 * One long-lived `python -m worker serve` process per runner (see worker/serve.py for the
 * line protocol). Restarted on the next job when it dies; its children die with it.
 */
class ForkServer {
  private child: ChildProcess | null = null;
  private ready: Promise<void> | null = null;
  private readonly requests = new Map<string, ForkRequest>();
  private nextId = 1;

  // Fork server output belongs to no job; it goes to the log of the job that started last.
  onLog: (line: string) => void = () => {};

  constructor(private readonly python: string, private readonly cwd: string) {}

  private start(): Promise<void> {
    const child = spawn(this.python, ['-m', 'worker', 'serve'], {
      cwd: this.cwd,
      env: { ...process.env, PYTHONUNBUFFERED: '1', HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child = child;
    // A write after the server died fails with EPIPE; the exit handler reports its jobs.
    child.stdin!.on('error', () => {});
    readline.createInterface({ input: child.stderr! }).on('line', (line) => this.onLog(`fork server: ${line}`));
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`the fork server did not start within ${FORK_SERVER_START_SECONDS} s`));
        child.kill('SIGKILL');
      }, FORK_SERVER_START_SECONDS * 1000);
      readline.createInterface({ input: child.stdout! }).on('line', (line) => {
        let message: { ready?: boolean; id?: string | null; pid?: number; code?: number | null; signal?: string | null; error?: string };
        try {
          message = JSON.parse(line);
        } catch {
          this.onLog(`fork server: ${line}`);
          return;
        }
        if (message.ready) {
          clearTimeout(timer);
          this.onLog(`fork server ready (imports took ${(message as { importSeconds?: number }).importSeconds} s)`);
          resolve();
          return;
        }
        const request = message.id ? this.requests.get(message.id) : undefined;
        if (!request) {
          if (message.error) this.onLog(`fork server: ${message.error}`);
          return;
        }
        if (message.error) {
          this.requests.delete(message.id!);
          request.onError(message.error);
        } else if ('code' in message || 'signal' in message) {
          this.requests.delete(message.id!);
          request.onExit({ code: message.code ?? null, signal: message.signal ?? null });
        } else if (typeof message.pid === 'number') {
          request.onPid(message.pid);
        }
      });
      child.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the fork server exited with ${signal ?? `code ${code}`} before it was ready`));
        if (this.child === child) {
          this.child = null;
          this.ready = null;
        }
        // Its children received SIGKILL (parent-death signal); report them as killed.
        for (const request of this.requests.values()) request.onExit({ code: null, signal: 'SIGKILL' });
        this.requests.clear();
      });
    });
  }

  warm(): Promise<void> {
    this.ready ??= this.start().catch((error: unknown) => {
      this.ready = null;
      throw error;
    });
    return this.ready;
  }

  fork(specPath: string, eventsPath: string, logsPath: string, handlers: ForkRequest): Promise<void> {
    return this.warm().then(() => {
      const id = String(this.nextId++);
      this.requests.set(id, handlers);
      this.child!.stdin!.write(`${JSON.stringify({ id, spec: specPath, events: eventsPath, logs: logsPath })}\n`);
    });
  }

  close(): void {
    this.child?.kill('SIGKILL');
  }

  /** Closes its stdin: it exits once its last child has been reaped. */
  shutdown(): void {
    this.child?.stdin?.end();
  }
}

let forkServer: ForkServer | null = null;

/** Lets the fork server exit, so the runner process can end (call when no job runs). */
export function shutdownForkServer(): void {
  forkServer?.shutdown();
  forkServer = null;
}

/** Starts the fork server ahead of the first job, so that job does not wait for the imports. */
export function prewarmForkServer(python: string, cwd: string, onLog: (line: string) => void): void {
  forkServer ??= new ForkServer(python, cwd);
  forkServer.onLog = onLog;
  forkServer.warm().catch((error: unknown) => onLog(`fork server did not start: ${(error as Error).message}`));
}

/** Accepts one connection on a fresh Unix socket and resolves with it. */
async function acceptOne(socketPath: string): Promise<{ connection: Promise<net.Socket>; close: () => void }> {
  const server = net.createServer();
  const connection = new Promise<net.Socket>((resolve) => {
    server.once('connection', (socket) => {
      server.close();
      resolve(socket);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });
  return { connection, close: () => server.close() };
}

async function forkWorker(options: WorkerOptions): Promise<WorkerHandle> {
  forkServer ??= new ForkServer(options.python, options.cwd);
  forkServer.onLog = options.onLog;
  // A private directory (mode 0700), so no other local user can connect to the sockets.
  // Its path is short because Unix socket paths are limited to about 100 bytes.
  const socketDir = await fs.mkdtemp(path.join(os.tmpdir(), 'amw-'));
  const eventsPath = path.join(socketDir, 'events.sock');
  const logsPath = path.join(socketDir, 'logs.sock');
  const events = await acceptOne(eventsPath);
  const logs = await acceptOne(logsPath);
  const reader = outputReader(options);

  let pid: number | undefined;
  let hasExited = false;
  let resolvePid!: () => void;
  let rejectPid!: (error: Error) => void;
  const forked = new Promise<void>((resolve, reject) => {
    resolvePid = resolve;
    rejectPid = reject;
  });
  const exited = new Promise<WorkerExit>((resolve) => {
    forkServer!.fork(path.resolve(options.specPath), eventsPath, logsPath, {
      onPid: (value) => {
        pid = value;
        live.add(value);
        resolvePid();
      },
      onError: (message) => rejectPid(new Error(message)),
      onExit: (exit) => {
        hasExited = true;
        if (pid !== undefined) live.delete(pid);
        resolvePid();
        resolve(exit);
      },
    }).catch((error: unknown) => rejectPid(error as Error));
  });
  try {
    await forked;
  } catch (error) {
    events.close();
    logs.close();
    await fs.rm(socketDir, { recursive: true, force: true });
    throw error;
  }

  // A stream ends when its socket closes; a worker that died before connecting never opens it.
  const streamDone = (accepted: typeof events, read: (stream: Readable) => Promise<void>) =>
    Promise.race([
      accepted.connection.then(read),
      exited.then(() => new Promise<void>((resolve) => setTimeout(resolve, DRAIN_AFTER_EXIT_MS))),
    ]).finally(() => {
      accepted.close();
      void accepted.connection.then((socket) => socket.destroy());
    });
  const eventsDone = streamDone(events, reader.readEvents);
  const logsDone = streamDone(logs, reader.readLogs);
  const kill = stopper(() => pid, () => hasExited);
  return {
    pid,
    logTail: reader.logTail,
    done: Promise.all([exited, eventsDone, logsDone]).then(async ([exit]) => {
      kill.clear();
      await fs.rm(socketDir, { recursive: true, force: true });
      return exit;
    }),
    stop: kill.stop,
  };
}
