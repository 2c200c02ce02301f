import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { hyperparameters, type Hyperparameters } from '../../server/contracts/runner';
import { createClient, type Client } from '../../lib/trpc-client';
import { toJsonl } from '../../scripts/demo-data';
import { ensureUser, uploadDataset } from '../../scripts/seed-lib';
import { adminToken, appSettings, appUrl, testEnv, TINY_BASE_ID } from './env';

export async function newUser(prefix: string): Promise<{ client: Client; token: string; namespace: string; email: string; password: string }> {
  const id = randomUUID().slice(0, 8);
  const user = { email: `${prefix}-${id}@example.com`, password: 'password-123', namespace: `${prefix}-${id}` };
  const { token } = await ensureUser(createClient({ url: appUrl }), user);
  return { client: createClient({ url: appUrl, token }), token, namespace: user.namespace, email: user.email, password: user.password };
}

/** Uploads `count` short yes/no examples for the tiny model, so none exceeds its sequence length. */
export async function shortDataset(client: Client, name: string, count = 40) {
  const rows = Array.from({ length: count }, (_, i) => ({ prompt: `Question ${i}: is ${i} even?`, completion: i % 2 === 0 ? 'yes' : 'no' }));
  const file = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'short-')), `${name}.jsonl`);
  await fs.writeFile(file, toJsonl(rows));
  return uploadDataset(client, file, name, TINY_BASE_ID);
}

export async function adminClient(): Promise<Client> {
  return createClient({ url: appUrl, token: await adminToken() });
}

export interface RunnerProcess {
  child: ChildProcess;
  output: string[];
  stop(): Promise<void>;
}

// Runners and extra apps still alive when the test process exits (a test failed before
// stopping them) are killed with their workers, so they cannot claim jobs of later test files.
const liveRunners = new Set<number>();
process.once('exit', () => {
  for (const pid of liveRunners) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
});

/** Starts a real runner process (its own process group, so a test can kill it with its worker). */
export async function startRunner(name: string, extraEnv: Record<string, string> = {}): Promise<RunnerProcess> {
  const { token } = await (await adminClient()).runner.createToken.mutate({ name });
  const workDir = await fs.mkdtemp(path.join(os.tmpdir(), `runner-${name}-`));
  const child = spawn(process.execPath, ['--import', 'tsx', 'gpu-runner/src/main.ts'], {
    env: {
      ...process.env, APP_URL: appUrl, RUNNER_TOKEN: token, RUNNER_NAME: name, RUNNER_WORK_DIR: path.join(workDir, 'work'),
      RUNNER_CACHE_DIR: path.join(workDir, 'cache'), RUNNER_POLL_SECONDS: '0.5', LOG_LEVEL: 'info', ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  liveRunners.add(child.pid!);
  child.once('exit', () => liveRunners.delete(child.pid!));
  const output: string[] = [];
  child.stdout!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  return {
    child,
    output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // Already gone.
      }
      await exited;
    },
  };
}

export async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 120_000, intervalMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * Waits for a runner to log `message` (its pino `msg`), polling its output every 20 ms.
 * Tests that interrupt a job mid-training wait for a log line, because the job's events reach
 * the app up to a second later. The tiny model trains a step in a few milliseconds, so by
 * then a short job may already be over.
 */
export async function waitForRunnerLog(runner: RunnerProcess, message: string, timeoutMs = 120_000): Promise<void> {
  const needle = `"msg":${JSON.stringify(message)}`;
  await waitFor(`runner log "${message}"`, async () => runner.output.join('').includes(needle), timeoutMs, 20);
}

/** Process ids of every descendant of `pid` (children, grandchildren, …), read from /proc. */
export async function descendants(pid: number): Promise<number[]> {
  const children = new Map<number, number[]>();
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await fs.readFile(`/proc/${entry}/stat`, 'utf8').catch(() => null);
    if (stat === null) continue;
    // The fields after the command name (which may hold spaces) are "state ppid …".
    const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
  }
  const found: number[] = [];
  for (let queue = [pid]; queue.length > 0;) {
    const next = children.get(queue.shift()!) ?? [];
    found.push(...next);
    queue.push(...next);
  }
  return found;
}

export async function waitForJob(client: Client, jobId: string, states: string[], timeoutMs = 180_000) {
  return waitFor(`job ${jobId} to reach ${states.join(' or ')}`, async () => {
    const job = await client.finetune.get.query({ jobId });
    return states.includes(job.state) ? job : null;
  }, timeoutMs);
}

/** Writes a safetensors file: an 8-byte header length, the JSON header, then the tensors' bytes (F32). */
export function safetensorsBytes(tensors: Record<string, { shape: number[]; values?: (i: number) => number }>, metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  const buffers: Buffer[] = [];
  let offset = 0;
  for (const [name, tensor] of Object.entries(tensors)) {
    const count = tensor.shape.reduce((a, b) => a * b, 1);
    const data = Buffer.alloc(count * 4);
    for (let i = 0; i < count; i++) data.writeFloatLE(tensor.values ? tensor.values(i) : 0.01 * ((i % 7) - 3), i * 4);
    header[name] = { dtype: 'F32', shape: tensor.shape, data_offsets: [offset, offset + data.length] };
    buffers.push(data);
    offset += data.length;
  }
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, ...buffers]);
}

export interface TinyModelManifest {
  modules: Record<string, { kind: string; shape: [number, number] }>;
}

export async function tinyManifest(): Promise<TinyModelManifest> {
  return JSON.parse(await fs.readFile(path.join(testEnv.TINY_MODEL_DIR, 'manifest.json'), 'utf8'));
}

/**
 * Builds a PEFT LoRA adapter folder for the tiny base model in TypeScript, so tests can also
 * craft broken ones. `mutate` edits the tensor table before it is written.
 */
export async function writeAdapterFolder(options: { rank?: number; targets?: string[]; mutate?: (tensors: Record<string, { shape: number[] }>) => void; config?: Record<string, unknown>; readme?: string } = {}): Promise<string> {
  const rank = options.rank ?? 4;
  const targets = options.targets ?? ['q_proj', 'v_proj'];
  const manifest = await tinyManifest();
  const tensors: Record<string, { shape: number[] }> = {};
  for (const [name, module] of Object.entries(manifest.modules)) {
    if (module.kind !== 'linear' || !targets.some((t) => name.endsWith(`.${t}`))) continue;
    const [out, inFeatures] = module.shape;
    tensors[`base_model.model.${name}.lora_A.weight`] = { shape: [rank, inFeatures] };
    tensors[`base_model.model.${name}.lora_B.weight`] = { shape: [out, rank] };
  }
  options.mutate?.(tensors);

  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'adapter-'));
  const config = { peft_type: 'LORA', task_type: 'CAUSAL_LM', r: rank, lora_alpha: rank * 2, lora_dropout: 0, target_modules: targets, base_model_name_or_path: 'tiny-llama', bias: 'none', ...options.config };
  await fs.writeFile(path.join(dir, 'adapter_config.json'), JSON.stringify(config, null, 2));
  await fs.writeFile(path.join(dir, 'adapter_model.safetensors'), safetensorsBytes(tensors));
  await fs.writeFile(path.join(dir, 'README.md'), options.readme ?? '---\nbase_model: tiny-llama\nlibrary_name: peft\n---\n# Test adapter\n\nHand-built for tests.\n');
  return dir;
}

/** Runs the CLI as a user would, returning its exit code and output. */
export function runCli(args: string[], token: string): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args, '--url', appUrl, '--token', token], { encoding: 'utf8', timeout: 120_000 });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** Runs a Python snippet in the worker's virtual environment. */
export function runPython(code: string, args: string[] = [], env: Record<string, string> = {}): { status: number; stdout: string; stderr: string } {
  const result = spawnSync('.venv/bin/python', ['-c', code, ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, HF_HUB_OFFLINE: '1', ...env } });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** Hyperparameters small enough for the tiny test model; `overrides` changes single values. */
export function tinyHyperparameters(overrides: Partial<Hyperparameters> = {}): Hyperparameters {
  return hyperparameters.parse({ rank: 4, alpha: 8, learningRate: 1e-3, epochs: 1, batchSize: 2, maxSeqLength: 128, dropout: 0, targetModules: 'all-linear', maxSteps: 1, gradientAccumulation: 1, warmupRatio: 0, seed: 1, ...overrides });
}

/**
 * Starts another app process on `port` over the same database and S3 (its own process group),
 * for tests that need other settings, such as a longer job lease, or an app they can stop.
 */
export function startExtraApp(port: number, env: Record<string, string>): ChildProcess {
  const app = spawn(path.resolve('node_modules/.bin/next'), ['start', '-p', String(port), '-H', '127.0.0.1'], {
    env: { ...process.env, NODE_ENV: 'production', NEXT_TELEMETRY_DISABLED: '1', ...appSettings(`http://127.0.0.1:${port}`), LOG_LEVEL: 'warn', ...env },
    stdio: 'ignore',
    detached: true,
  });
  liveRunners.add(app.pid!);
  app.once('exit', () => liveRunners.delete(app.pid!));
  return app;
}

export async function stopExtraApp(app: ChildProcess): Promise<void> {
  if (app.exitCode !== null || app.signalCode !== null) return;
  const exited = new Promise((resolve) => app.once('exit', resolve));
  try {
    process.kill(-app.pid!, 'SIGKILL');
  } catch {
    // Already gone.
  }
  await exited;
}
