/**
 * Search with 100,000 adapters: the production app's tRPC search endpoint under 50
 * concurrent clients, beside the bare SQL it issues on a 50-connection `pg` pool, measured
 * in the same run on the same database.
 *
 *   S3_ENDPOINT=http://127.0.0.1:8533 npx next build   (the build fixes the S3 origin of its Content-Security-Policy)
 *   npx tsx bench/search-100k.ts [--adapters 100000] [--connections 50] [--duration 30] [--warmup 5] [--reseed]
 *
 * The first run creates and seeds the database `adapters_bench_search` on
 * postgres://postgres@127.0.0.1:5432, which takes about 12 minutes on 2 shared cores. Later
 * runs reuse it while its seed parameters match, and `--reseed` starts over. The app listens on 127.0.0.1:3200 and SeaweedFS on 127.0.0.1:8533.
 * Prints a JSON record and writes it to bench/results/search-100k-<date>.json.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import { createClient } from '../lib/trpc-client';
import { ensureUser } from '../scripts/seed-lib';
import { buildVocabulary, Rng } from './lib/search-data';
import { buildMix, captureSql, runEndpointLoad, runSequential, runSqlLoad, type MixItem } from './lib/search-load';
import { seedSearchRegistry, type SeedReport } from './lib/search-seed';
import { describeMachine, requireBuild, root, startApp, startSeaweedFs, stopStack } from './lib/stack';

const { values } = parseArgs({
  options: {
    adapters: { type: 'string', default: '100000' },
    namespaces: { type: 'string', default: '6000' },
    seed: { type: 'string', default: '42' },
    connections: { type: 'string', default: '50' },
    duration: { type: 'string', default: '30' },
    warmup: { type: 'string', default: '5' },
    mix: { type: 'string', default: '600' },
    reseed: { type: 'boolean', default: false },
    // Also send every request once from one client, to separate the app's per-request cost from queueing.
    sequential: { type: 'boolean', default: false },
    // Seconds before Postgres cancels a statement: a guard against runaway plans on a shared machine.
    'statement-timeout': { type: 'string', default: '15' },
    label: { type: 'string', default: '' },
  },
});

const PORT = 3200;
const S3_PORT = 8533;
const DATABASE = 'adapters_bench_search';
const SERVER_URL = 'postgres://postgres@127.0.0.1:5432';
const DATABASE_URL = `${SERVER_URL}/${DATABASE}`;
// Bump when the generator changes, so an older seeded database is rebuilt.
const SEED_FORMAT = 1;
const ADMIN = { email: 'bench-admin@example.com', password: 'bench-admin-password', namespace: 'bench' };

const workDir = path.join(root, '.data', 'bench-search');
const log = (message: string) => console.error(`[search-100k] ${message}`);

async function seedMarker(): Promise<string | null> {
  const admin = new pg.Client({ connectionString: `${SERVER_URL}/postgres` });
  await admin.connect();
  try {
    const { rows } = await admin.query<{ comment: string | null }>(`select shobj_description(oid, 'pg_database') as comment from pg_database where datname = $1`, [DATABASE]);
    return rows[0]?.comment ?? null;
  } finally {
    await admin.end();
  }
}

/**
 * Returns the request mix saved for this seed, or builds and saves it. Second pages need the
 * cursor of a real first page, which is fetched from the endpoint. Because the mix is saved,
 * later runs (such as one with a changed search query) replay exactly the same requests.
 */
async function loadOrBuildMix(url: string, size: number, seed: number, marker: string): Promise<Omit<MixItem, 'sql' | 'params'>[]> {
  const file = path.join(workDir, 'mix.json');
  const saved = await fs.readFile(file, 'utf8').then((text) => JSON.parse(text) as { marker: string; size: number; items: Omit<MixItem, 'sql' | 'params'>[] }, () => null);
  if (saved?.marker === marker && saved.size === size) {
    log(`reusing the request mix in ${path.relative(root, file)}`);
    return saved.items;
  }
  log(`building a mix of ${size} requests`);
  const items = await buildMix(new Rng(seed + 1), buildVocabulary(new Rng(seed)), size, async (input) => {
    const response = await fetch(`${url}/api/trpc/adapters.search?input=${encodeURIComponent(JSON.stringify(input))}`);
    if (!response.ok) throw new Error(`search returned HTTP ${response.status}: ${(await response.text()).slice(0, 300)}`);
    const body = await response.json() as { result: { data: { nextCursor: string | null } } };
    return body.result.data.nextCursor;
  });
  await fs.writeFile(file, JSON.stringify({ marker, size, items }));
  return items;
}

/**
 * Sets the statement timeout of every new session on the benchmark database, the app's
 * included, so that a runaway plan cannot hold the shared machine's cores for minutes.
 */
async function setStatementTimeout(seconds: number): Promise<void> {
  const admin = new pg.Client({ connectionString: `${SERVER_URL}/postgres` });
  await admin.connect();
  try {
    await admin.query(`alter database ${DATABASE} set statement_timeout = '${Math.round(seconds * 1000)}ms'`);
  } finally {
    await admin.end();
  }
}

async function main() {
  await requireBuild();
  const settings = {
    adapters: Number(values.adapters), namespaces: Number(values.namespaces), seed: Number(values.seed),
    connections: Number(values.connections), duration: Number(values.duration), warmup: Number(values.warmup), mixSize: Number(values.mix),
    statementTimeoutSeconds: Number(values['statement-timeout']),
  };
  const expectedMarker = JSON.stringify({ format: SEED_FORMAT, adapters: settings.adapters, namespaces: settings.namespaces, seed: settings.seed });
  const reseed = values.reseed || (await seedMarker()) !== expectedMarker;

  if (reseed) {
    log(`recreating database ${DATABASE}`);
    await fs.rm(workDir, { recursive: true, force: true });
    execFileSync(process.execPath, [path.join(root, 'scripts', 'reset-database.mjs'), DATABASE_URL], { stdio: 'inherit' });
  }
  await fs.mkdir(workDir, { recursive: true });
  // Applied here, before the statement timeout exists, because a migration on 100,000 rows
  // can run for minutes; the app then finds nothing left to apply.
  log('applying the migrations');
  const migrationPool = new pg.Pool({ connectionString: DATABASE_URL, max: 1, options: '-c statement_timeout=0' });
  await migrate(drizzle(migrationPool), { migrationsFolder: path.join(root, 'drizzle', 'migrations') });
  await migrationPool.end();
  await setStatementTimeout(Number(values['statement-timeout']));
  const s3 = startSeaweedFs(path.join(workDir, 'seaweedfs'), S3_PORT, { bucket: 'bench-search', accessKeyId: 'bench-key', secretAccessKey: 'bench-secret-key' });
  log('starting the app');
  const url = await startApp({
    port: PORT,
    logFile: path.join(workDir, 'app.log'),
    env: {
      DATABASE_URL, S3_ENDPOINT: s3.endpoint, S3_BUCKET: s3.bucket, S3_ACCESS_KEY_ID: s3.accessKeyId, S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
      NEXTAUTH_SECRET: 'bench-secret-not-for-production', LOG_LEVEL: 'warn',
    },
  });

  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: settings.connections });
  // Bulk inserts and VACUUM may run longer than the statement timeout.
  const seedPool = new pg.Pool({ connectionString: DATABASE_URL, max: 2, options: '-c statement_timeout=0' });
  try {
    let seedReport: SeedReport | { reused: true; adapters: number; listed: number };
    if (reseed) {
      const { token } = await ensureUser(createClient({ url }), ADMIN, { admin: true });
      seedReport = await seedSearchRegistry({
        pool: seedPool, admin: createClient({ url, token }), adminNamespace: ADMIN.namespace, adapters: settings.adapters, namespaces: settings.namespaces,
        seed: settings.seed, workDir, log,
      });
      await pool.query(`comment on database ${DATABASE} is '${expectedMarker.replace(/'/g, "''")}'`);
      log(`seeded in ${seedReport.seconds} s`);
    } else {
      const { rows: [counts] } = await pool.query(`select count(*)::int as adapters, count(*) filter (where latest_version is not null and deleted_at is null)::int as listed from adapters`);
      seedReport = { reused: true, adapters: counts.adapters, listed: counts.listed };
      log(`reusing the seeded database (${counts.adapters} adapters)`);
    }

    // A migration may have rewritten the table; measure with fresh statistics and visibility map.
    log('vacuum analyze adapters');
    await seedPool.query('vacuum analyze adapters');

    const planned = await loadOrBuildMix(url, settings.mixSize, settings.seed, expectedMarker);
    const mix = await captureSql(planned);
    const shapes = Object.fromEntries([...new Set(mix.map((item) => item.shape))].sort().map((shape) => [shape, mix.filter((item) => item.shape === shape).length]));

    log(`endpoint: ${settings.warmup} s warm-up, then ${settings.duration} s with ${settings.connections} connections`);
    await runEndpointLoad(url, mix, settings.connections, settings.warmup);
    const endpoint = await runEndpointLoad(url, mix, settings.connections, settings.duration);
    log(`endpoint: ${endpoint.requestsPerSecond} requests/s, p50 ${endpoint.latency.p50} ms, p95 ${endpoint.latency.p95} ms, p99 ${endpoint.latency.p99} ms`);

    log(`bare SQL: ${settings.warmup} s warm-up, then ${settings.duration} s on ${settings.connections} connections`);
    await runSqlLoad(pool, mix, settings.connections, settings.warmup);
    const sql = await runSqlLoad(pool, mix, settings.connections, settings.duration);
    log(`bare SQL: ${sql.requestsPerSecond} queries/s, p50 ${sql.latency.p50} ms, p95 ${sql.latency.p95} ms, p99 ${sql.latency.p99} ms`);

    let sequential = null;
    if (values.sequential) {
      log('one client, every request of the mix once, endpoint and SQL in turn');
      sequential = await runSequential(url, pool, mix);
    }

    // The slowest shape by p95 under load; its plan is shown for the slowest request of that shape.
    const slowest = Object.entries(sql.byShape!).sort(([, a], [, b]) => b.p95 - a.p95)[0]![0];
    const worstItem = mix[sql.slowestItem]!.shape === slowest ? mix[sql.slowestItem]! : mix.find((item) => item.shape === slowest)!;
    log(`EXPLAIN ANALYZE of the slowest shape, ${slowest}`);
    const slowestPlan = await explain(pool, worstItem);

    const machine = await describeMachine();
    const postgres = (await pool.query<{ version: string }>('select version()')).rows[0]!.version;
    const record = {
      date: new Date().toISOString(),
      label: values.label || undefined,
      command: `npx tsx bench/search-100k.ts ${process.argv.slice(2).join(' ')}`.trim(),
      machine, postgres, settings, seed: seedReport, shapes,
      endpoint, sql,
      ratios: {
        p50: round(endpoint.latency.p50 / sql.latency.p50), p95: round(endpoint.latency.p95 / sql.latency.p95),
        throughput: round(endpoint.requestsPerSecond / sql.requestsPerSecond),
      },
      targets: { endpointP95AtMost3xSqlP95: endpoint.latency.p95 <= 3 * sql.latency.p95, endpointP95Under50ms: endpoint.latency.p95 < 50 },
      sequential,
      slowestShape: { shape: slowest, ...slowestPlan },
    };
    await fs.mkdir(path.join(root, 'bench', 'results'), { recursive: true });
    const out = path.join(root, 'bench', 'results', `search-100k-${record.date.slice(0, 10)}${values.label ? `-${values.label}` : ''}.json`);
    await fs.writeFile(out, JSON.stringify(record, null, 2) + '\n');
    console.log(JSON.stringify(record, null, 2));
    log(`wrote ${path.relative(root, out)}`);
  } finally {
    await pool.end();
    await seedPool.end();
    stopStack();
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

/**
 * EXPLAIN (ANALYZE, BUFFERS) of one request, without the statement timeout so that a slow
 * plan is shown to the end (up to 10 minutes).
 */
async function explain(pool: pg.Pool, item: MixItem): Promise<{ input: Record<string, unknown>; sql: string; params: unknown[]; plan: string }> {
  const client = await pool.connect();
  try {
    await client.query(`set statement_timeout = '600s'`);
    const { rows } = await client.query<{ 'QUERY PLAN': string }>({ text: `explain (analyze, buffers) ${item.sql}`, values: item.params });
    return { input: item.input, sql: item.sql, params: item.params, plan: rows.map((row) => row['QUERY PLAN']).join('\n') };
  } finally {
    await client.query('reset statement_timeout');
    client.release();
  }
}

main().catch((error: unknown) => {
  console.error(`benchmark failed: ${(error as Error).stack ?? (error as Error).message}`);
  stopStack();
  process.exit(1);
});
