import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import { workerEvent, type WorkerEvent } from '../../server/contracts/worker-events';

// Live worker processes, so the runner can kill them when it must exit at once.
const live = new Set<ChildProcess>();

/** SIGKILLs every live worker; used when the runner exits without draining. */
export function killAllWorkers(): void {
  for (const child of live) child.kill('SIGKILL');
}

export interface WorkerHandle {
  child: ChildProcess;
  // Resolves with the exit code (or the signal name) once stdout is drained.
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  // The last 100 stderr and unparseable stdout lines, for the failure report.
  logTail: string[];
  stop(graceSeconds: number): void;
}

/**
 * Starts the Python worker on a spec file and feeds every validated event to `onEvent`.
 * Lines on stdout that are not valid events are kept as log lines, never trusted.
 */
export function startWorker(options: { python: string; cwd: string; specPath: string; onEvent: (event: WorkerEvent) => void; onLog: (line: string) => void }): WorkerHandle {
  const child = spawn(options.python, ['-m', 'worker', 'run', '--spec', options.specPath], {
    cwd: options.cwd,
    env: { ...process.env, PYTHONUNBUFFERED: '1', HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  child.on('exit', () => live.delete(child));
  const logTail: string[] = [];
  const keep = (line: string) => {
    logTail.push(line);
    if (logTail.length > 100) logTail.shift();
    options.onLog(line);
  };

  const stdoutDone = new Promise<void>((resolve) => {
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
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
  readline.createInterface({ input: child.stderr! }).on('line', keep);

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
    child.on('error', (error) => {
      keep(`failed to start the worker with ${options.python}: ${error.message}`);
      resolve({ code: 127, signal: null });
    });
  });

  let killTimer: NodeJS.Timeout | undefined;
  return {
    child,
    logTail,
    done: Promise.all([exited, stdoutDone]).then(([exit]) => {
      clearTimeout(killTimer);
      return exit;
    }),
    stop(graceSeconds) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), graceSeconds * 1000);
    },
  };
}
