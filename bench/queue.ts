/**
 * Job queue benchmark, two measurements in one run against the production build:
 *
 * 1. Queue wait: 8 idle runner processes (the real gpu-runner with its default 2 s poll) and
 *    evaluation jobs created one at a time, each after the previous one started. Wait is the
 *    database's `started_at - queued_at`. Each job really runs (tiny model, one item).
 * 2. Claim throughput: 50 registered runners, each an in-process loop calling `runner.claim`
 *    over HTTP as soon as its previous call returns, on a queue pre-filled with jobs. Beside it, the same
 *    run measures the bare row-lock claim (SELECT … FOR UPDATE SKIP LOCKED and UPDATE in one
 *    transaction, as the service issues it) from 50 direct Postgres connections.
 *
 *   S3_ENDPOINT=http://127.0.0.1:8533 npx next build
 *   npx tsx bench/queue.ts [--jobs 40] [--claims 3000] [--runners 8] [--pollers 50]
 *
 * The app listens on 127.0.0.1:3200 (database `adapters_bench_queue`, recreated each run),
 * SeaweedFS on 127.0.0.1:8533. Prints a JSON record and writes it to
 * bench/results/queue-<date>.json.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createClient, type Client } from '../lib/trpc-client';
import { pubmedqaSplits, toJsonl } from '../scripts/demo-data';
import { ensureUser, PUBMEDQA_TASK, registerBaseModelFromFolder, registerTaskFromFile } from '../scripts/seed-lib';
import { describeMachine, onExit, requireBuild, root, startApp, startSeaweedFs, stopStack } from './lib/stack';
import { summarize } from './lib/stats';

const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '40' },
    claims: { type: 'string', default: '3000' },
    runners: { type: 'string', default: '8' },
    pollers: { type: 'string', default: '50' },
  },
});
const JOBS = Number(values.jobs);
const CLAIMS = Number(values.claims);
const RUNNERS = Number(values.runners);
const POLLERS = Number(values.pollers);

const PORT = 3200;
const S3_PORT = 8533;
const DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/adapters_bench_queue';
const workDir = path.join(root, '.data', 'bench-queue');
const log = (message: string) => console.error(`[queue] ${message}`);

async function main() {
  await requireBuild();
  await fs.rm(workDir, { recursive: true, force: true });
  await fs.mkdir(workDir, { recursive: true });
  execFileSync('node', [path.join(root, 'scripts', 'reset-database.mjs'), DATABASE_URL], { stdio: 'inherit' });
  const s3 = startSeaweedFs(path.join(workDir, 'seaweedfs'), S3_PORT, { bucket: 'adapters-bench', accessKeyId: 'bench-key', secretAccessKey: 'bench-secret' });
  const url = await startApp({
    port: PORT,
    logFile: path.join(workDir, 'app.log'),
    env: {
      DATABASE_URL, S3_ENDPOINT: s3.endpoint, S3_BUCKET: s3.bucket, S3_ACCESS_KEY_ID: s3.accessKeyId, S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
      NEXTAUTH_SECRET: 'bench-secret-not-for-production', LOG_LEVEL: 'warn',
      // The claim loops never complete their jobs; a lease that ran out would hand a job out again.
      JOB_LEASE_SECONDS: '3600',
    },
  });

  log('seeding an admin, the tiny model, a task and one adapter');
  const tinyDir = path.join(workDir, 'tiny-llama');
  execFileSync(path.join(root, '.venv', 'bin', 'python'), ['-m', 'worker', 'make-tiny', '--out', tinyDir, '--tokenizer-from', path.join(root, '.data', 'models', 'smollm2-135m-instruct')],
    { cwd: path.join(root, 'gpu-runner'), stdio: ['ignore', 'ignore', 'inherit'] });
  const { token } = await ensureUser(createClient({ url }), { email: 'bench@example.com', password: 'bench-password', namespace: 'bench' }, { admin: true });
  const admin = createClient({ url, token });
  await registerBaseModelFromFolder(admin, tinyDir, 'tiny-llama', 'Tiny random Llama (benchmark)', { exportPlaygroundGraph: false });
  const taskFile = path.join(workDir, 'task.jsonl');
  await fs.writeFile(taskFile, toJsonl((await pubmedqaSplits()).task.slice(0, 5)));
  await registerTaskFromFile(admin, taskFile, PUBMEDQA_TASK);
  const adapterDir = await writeTinyAdapter(tinyDir);
  execFileSync(process.execPath, ['--import', 'tsx', path.join(root, 'cli', 'main.ts'), 'publish', adapterDir, '--name', 'queued', '--base', 'tiny-llama', '--url', url, '--token', token],
    { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });

  const db = new pg.Client({ connectionString: DATABASE_URL });
  await db.connect();
  onExit(() => void db.end());

  const queueWait = await measureQueueWait(admin, db, url);
  const claims = await measureClaims(admin, db, url);

  const record = {
    benchmark: 'queue', date: new Date().toISOString(), machine: await describeMachine(),
    settings: { jobs: JOBS, runners: RUNNERS, runnerPollSeconds: 2, claims: CLAIMS, pollers: POLLERS },
    queueWait, claims,
  };
  const out = path.join(root, 'bench', 'results', `queue-${record.date.slice(0, 10)}.json`);
  await fs.writeFile(out, `${JSON.stringify(record, null, 2)}\n`);
  console.log(JSON.stringify(record, null, 2));
  stopStack();
}

/** Writes a rank-4 LoRA for the tiny model's q_proj and v_proj, like the one the tests publish. */
async function writeTinyAdapter(tinyDir: string): Promise<string> {
  const manifest = JSON.parse(await fs.readFile(path.join(tinyDir, 'manifest.json'), 'utf8')) as { modules: Record<string, { kind: string; shape: [number, number] }> };
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, module] of Object.entries(manifest.modules)) {
    if (module.kind !== 'linear' || !/\.(q_proj|v_proj)$/.test(name)) continue;
    const [out, inFeatures] = module.shape;
    for (const [suffix, shape] of [['lora_A', [4, inFeatures]], ['lora_B', [out, 4]]] as const) {
      const bytes = shape[0] * shape[1] * 4;
      header[`base_model.model.${name}.${suffix}.weight`] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] };
      offset += bytes;
    }
  }
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bench-adapter-'));
  await fs.writeFile(path.join(dir, 'adapter_model.safetensors'), Buffer.concat([length, json, Buffer.alloc(offset)]));
  await fs.writeFile(path.join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], base_model_name_or_path: 'tiny-llama', bias: 'none' }));
  return dir;
}

/** Starts `count` real runner processes with their default poll interval. */
async function startRunners(admin: Client, url: string, count: number): Promise<ChildProcess[]> {
  const children: ChildProcess[] = [];
  for (let i = 0; i < count; i++) {
    const { token } = await admin.runner.createToken.mutate({ name: `bench-runner-${i}` });
    const dir = path.join(workDir, `runner-${i}`);
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'gpu-runner', 'src', 'main.ts')], {
      cwd: root,
      env: { ...process.env, APP_URL: url, RUNNER_TOKEN: token, RUNNER_NAME: `bench-runner-${i}`, RUNNER_WORK_DIR: path.join(dir, 'work'), RUNNER_CACHE_DIR: path.join(dir, 'cache'), LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'inherit'],
      detached: true,
    });
    onExit(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // Already gone.
      }
    });
    children.push(child);
  }
  return children;
}

async function waitUntil(what: string, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function measureQueueWait(admin: Client, db: pg.Client, url: string) {
  log(`queue wait: ${RUNNERS} idle runners, ${JOBS} jobs one after another`);
  const runners = await startRunners(admin, url, RUNNERS);
  await waitUntil('the runners to register', async () => Number((await db.query('select count(*) as n from runners')).rows[0].n) >= RUNNERS, 180_000);
  // Let every fork server finish importing, so the runners are idle, not starting.
  await new Promise((resolve) => setTimeout(resolve, 30_000));

  const waits: number[] = [];
  for (let i = 0; i < JOBS; i++) {
    const { jobId } = await admin.evals.request.mutate({ namespace: 'bench', name: 'queued', taskId: PUBMEDQA_TASK.id, limit: 1 });
    await waitUntil(`job ${jobId} to start`, async () => (await db.query('select started_at from jobs where id = $1', [jobId])).rows[0].started_at !== null, 60_000);
    const { rows } = await db.query<{ ms: number }>('select extract(epoch from started_at - queued_at) * 1000 as ms from jobs where id = $1', [jobId]);
    waits.push(Number(rows[0]!.ms));
    await waitUntil(`job ${jobId} to end`, async () => ['succeeded', 'failed'].includes((await db.query('select state from jobs where id = $1', [jobId])).rows[0].state), 120_000);
    // A random gap, so arrivals do not lock step with the runners' poll timers.
    await new Promise((resolve) => setTimeout(resolve, 200 + Math.random() * 1800));
  }
  for (const child of runners) process.kill(-child.pid!, 'SIGKILL');
  const failed = Number((await db.query(`select count(*) as n from jobs where state = 'failed'`)).rows[0].n);
  return { waitMs: summarize(waits), failedJobs: failed };
}

/** Copies one queued evaluation job `count` times straight in SQL, so filling the queue takes no time. */
async function fillQueue(admin: Client, db: pg.Client, count: number): Promise<void> {
  const { jobId } = await admin.evals.request.mutate({ namespace: 'bench', name: 'queued', taskId: PUBMEDQA_TASK.id, limit: 1 });
  await db.query(
    `insert into jobs (kind, state, namespace_id, created_by, base_model_id, params, max_attempts, queued_at)
     select kind, state, namespace_id, created_by, base_model_id, params, max_attempts, now() + (g * interval '1 microsecond')
       from jobs cross join generate_series(1, $2) as g where id = $1`, [jobId, count - 1]);
}

async function measureClaims(admin: Client, db: pg.Client, url: string) {
  log(`claims: ${POLLERS} polling runners over HTTP, then ${POLLERS} direct connections`);
  await db.query(`update jobs set state = 'cancelled' where state in ('queued', 'running')`);
  await fillQueue(admin, db, CLAIMS);

  const pollers: { client: Client; runnerId: string }[] = [];
  for (let i = 0; i < POLLERS; i++) {
    const { token } = await admin.runner.createToken.mutate({ name: `bench-poller-${i}` });
    const client = createClient({ url, token });
    const { runnerId } = await client.runner.register.mutate({
      name: `bench-poller-${i}`, capabilities: { cpuOnly: true, gpus: [], bf16: false, hostname: 'bench', memoryBytes: 64e9 },
    });
    pollers.push({ client, runnerId });
  }
  const http = await claimLoop(POLLERS, async (i) => {
    const { job } = await pollers[i]!.client.runner.claim.mutate({ runnerId: pollers[i]!.runnerId });
    return job !== null;
  });
  const emptyPoll = await claimLoop(POLLERS, async (i) => {
    await pollers[i]!.client.runner.claim.mutate({ runnerId: pollers[i]!.runnerId });
    return true;
  }, 10_000);

  await db.query(`update jobs set state = 'cancelled' where state in ('queued', 'running')`);
  await fillQueue(admin, db, CLAIMS);
  const runnerId = pollers[0]!.runnerId;
  const connections = await Promise.all(Array.from({ length: POLLERS }, async () => {
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    return client;
  }));
  // The statement pair claimJob issues, without the service's other work (lease expiry,
  // runner bookkeeping, the job event and the presigned URLs of the spec).
  const sql = await claimLoop(POLLERS, async (i) => {
    const connection = connections[i]!;
    await connection.query('begin');
    const { rows } = await connection.query(`select id from jobs where state = 'queued' order by queued_at limit 1 for update skip locked`);
    if (rows.length > 0) {
      await connection.query(`update jobs set state = 'running', attempts = attempts + 1, runner_id = $2, lease_token = 'bench',
        lease_expires_at = now() + interval '1 hour', started_at = coalesce(started_at, now()) where id = $1`, [rows[0].id, runnerId]);
    }
    await connection.query('commit');
    return rows.length > 0;
  });
  await Promise.all(connections.map((connection) => connection.end()));
  return { http, sql, emptyPoll, httpToSqlThroughput: Math.round((http.claimsPerSecond / sql.claimsPerSecond) * 1000) / 1000 };
}

/**
 * Runs `workers` loops that call `claim` back to back until the queue is empty (or, with
 * `durationMs`, for that long), and returns successful claims per second and call latency.
 */
async function claimLoop(workers: number, claim: (worker: number) => Promise<boolean>, durationMs?: number) {
  const latencies: number[] = [];
  let claimed = 0;
  let done = false;
  const started = performance.now();
  const stopAt = durationMs ? started + durationMs : Number.POSITIVE_INFINITY;
  await Promise.all(Array.from({ length: workers }, async (_, worker) => {
    while (!done && performance.now() < stopAt) {
      const before = performance.now();
      const got = await claim(worker);
      latencies.push(performance.now() - before);
      if (got) claimed++;
      else if (!durationMs) done = true;
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  return {
    calls: latencies.length, claimed, seconds: Math.round(seconds * 100) / 100,
    claimsPerSecond: Math.round((claimed / seconds) * 10) / 10, callsPerSecond: Math.round((latencies.length / seconds) * 10) / 10,
    latencyMs: summarize(latencies),
  };
}

main().catch((error: unknown) => {
  console.error(error);
  stopStack();
  process.exit(1);
});
