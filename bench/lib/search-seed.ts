/**
 * Seeds the search benchmark's database. Base models, benchmark tasks and a few adapters go
 * through the public API; the bulk of the adapters is inserted with set-based SQL from
 * bench/lib/search-data.ts. Two checks tie the bulk rows to the app: adapters generated the
 * same way and published through the API must produce exactly the predicted rows, and the
 * app's own refreshListing must leave a sample of bulk rows unchanged.
 *
 * Not seeded: per-user `likes` rows and per-client `download_events` behind the like and
 * download counters (search reads only the counters), and the finished `upload_sessions`
 * rows that publishing leaves (nothing in search or listing reads them).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { hash as argon2Hash } from '@node-rs/argon2';
import { drizzle } from 'drizzle-orm/node-postgres';
import type pg from 'pg';
import * as schema from '../../drizzle/schema';
import { announce, describeFolder, putFiles } from '../../cli/upload';
import type { Client } from '../../lib/trpc-client';
import { finalizeUpload } from '../../lib/upload-protocol';
import type { Db } from '../../server/db';
import { SCORING_METHOD } from '../../server/services/evaluations';
import { refreshListing } from '../../server/services/adapters';
import { registerTaskFromFile } from '../../scripts/seed-lib';
import { BASE_MODELS, baseModules, loraTensorTable, registerBenchBaseModel, writeZeroSafetensors } from './base-models';
import { buildVocabulary, generateAdapter, generateNamespaces, Rng, Zipf, type GenerationContext, type SeedAdapter } from './search-data';

// Domains that get a benchmark task, and so scores for some of their adapters.
const TASK_DOMAINS = ['medical', 'legal', 'finance', 'code', 'math'];
const TASK_ITEMS = 200;
const BATCH = 1000;
// Reference adapters published through the API; their safetensors files stay under this size.
const REFERENCE_ADAPTERS = 3;
const REFERENCE_MAX_BYTES = 8 * 1024 * 1024;

export interface SeedOptions {
  pool: pg.Pool;
  admin: Client;
  adminNamespace: string;
  adapters: number;
  namespaces: number;
  seed: number;
  workDir: string;
  log: (message: string) => void;
}

export interface SeedReport {
  adapters: number;
  listed: number;
  namespaces: number;
  versions: number;
  evalResults: number;
  referencePublished: number;
  refreshListingChecked: number;
  seconds: number;
  tableBytes: Record<string, number>;
}

/** Registers one benchmark task per domain in TASK_DOMAINS through the API. */
async function registerTasks(admin: Client, workDir: string): Promise<void> {
  for (const domain of TASK_DOMAINS) {
    const items = Array.from({ length: TASK_ITEMS }, (_, i) => ({ id: `${domain}-${i}`, prompt: `Question ${i} about ${domain}?`, choices: ['yes', 'no', 'maybe'], gold: i % 3 }));
    const file = path.join(workDir, `${domain}-task.jsonl`);
    await fs.writeFile(file, items.map((item) => JSON.stringify(item)).join('\n') + '\n');
    await registerTaskFromFile(admin, file, { id: `${domain}-bench`, displayName: `${domain} benchmark (synthetic)`, description: `Synthetic ${domain} items for the search benchmark.`, domain });
  }
}

/**
 * Publishes generated adapters through the API (beginUpload, putFiles, publish) and checks
 * that the app stored exactly the rows the generator predicted for them.
 */
async function publishReferences(options: SeedOptions, ctx: GenerationContext, namespace: GenerationContext['namespaces'][number]): Promise<number> {
  let published = 0;
  for (let attempt = 0; published < REFERENCE_ADAPTERS; attempt++) {
    if (attempt > 500) throw new Error('found no small adapter to publish as a reference in 500 tries');
    const generated = generateAdapter(ctx, namespace);
    const weights = generated.files.find((file) => file.path === 'adapter_model.safetensors')!;
    if (generated.lifecycle || weights.size > REFERENCE_MAX_BYTES) continue;

    const dir = path.join(options.workDir, 'reference', String(published));
    await fs.mkdir(dir, { recursive: true });
    const base = BASE_MODELS.find((model) => model.id === generated.publish.baseModelId)!;
    await fs.writeFile(path.join(dir, 'adapter_config.json'), generated.publish.configText);
    await writeZeroSafetensors(path.join(dir, 'adapter_model.safetensors'), loraTensorTable(baseModules(base), generated.publish.tensors));
    if (generated.publish.modelCard !== null) await fs.writeFile(path.join(dir, 'README.md'), generated.publish.modelCard);
    const files = await describeFolder(dir);
    const begun = await options.admin.adapters.beginUpload.mutate({ files: files.map(announce) });
    await putFiles(files, begun.files);
    await finalizeUpload(() => options.admin.adapters.publish.mutate({
      uploadId: begun.uploadId, name: generated.adapter.name as string, baseModelId: base.id, description: generated.publish.description,
      domain: generated.publish.domain, label: generated.publish.label, changelog: generated.publish.changelog,
    }));
    await compareWithApp(options.pool, generated);
    published += 1;
  }
  return published;
}

const LISTING_COLUMNS = ['name', 'description', 'domain', 'base_model_id', 'latest_version', 'rank', 'peft_type', 'task_type', 'license', 'tags', 'size_bytes', 'search_text'];
const VERSION_COLUMNS = ['version', 'config', 'config_summary', 'label', 'changelog', 'model_card', 'card_metadata', 'size_bytes', 'warnings', 'published_by'];

/** Throws with the first differing column unless the app's rows equal the generator's. */
async function compareWithApp(pool: pg.Pool, generated: SeedAdapter): Promise<void> {
  const { rows: [row] } = await pool.query(
    `select to_jsonb(a) as adapter, to_jsonb(v) as version, (select jsonb_agg(jsonb_build_object('path', f.path, 'size', f.size)) from adapter_files f where f.version_id = v.id) as files
     from adapters a join adapter_versions v on v.adapter_id = a.id where a.namespace_id = $1 and a.name = $2 and a.deleted_at is null`,
    [generated.adapter.namespace_id, generated.adapter.name],
  );
  if (!row) throw new Error(`reference adapter ${String(generated.adapter.name)} was not found after publishing`);
  const normalize = (value: unknown) => JSON.stringify(value, (_key, inner: unknown) => (inner && typeof inner === 'object' && !Array.isArray(inner)
    ? Object.fromEntries(Object.entries(inner as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b))) : inner));
  const differences: string[] = [];
  for (const column of LISTING_COLUMNS) {
    if (normalize(row.adapter[column]) !== normalize(generated.adapter[column])) differences.push(`adapters.${column}: app ${normalize(row.adapter[column]).slice(0, 300)} / seed ${normalize(generated.adapter[column]).slice(0, 300)}`);
  }
  for (const column of VERSION_COLUMNS) {
    if (normalize(row.version[column]) !== normalize(generated.version[column])) differences.push(`adapter_versions.${column}: app ${normalize(row.version[column]).slice(0, 300)} / seed ${normalize(generated.version[column]).slice(0, 300)}`);
  }
  const byPath = (a: { path: string }, b: { path: string }) => a.path.localeCompare(b.path);
  const storedFiles = (row.files as { path: string; size: number }[]).sort(byPath);
  const expectedFiles = generated.files.map((file) => ({ path: file.path, size: file.size })).sort(byPath);
  if (normalize(storedFiles) !== normalize(expectedFiles)) differences.push(`adapter_files: app ${normalize(storedFiles)} / seed ${normalize(expectedFiles)}`);
  if (differences.length > 0) throw new Error(`seeded rows differ from what publishing wrote for ${String(generated.adapter.name)}:\n  ${differences.join('\n  ')}`);
}

/** Inserts one batch of generated adapters with their versions, files, jobs and scores, in one transaction. */
async function insertBatch(pool: pg.Pool, batch: SeedAdapter[], tasks: Map<string, { id: string; version: number; dataSha256: string; itemCount: number }>, namespaceOwner: Map<string, string>, rng: Rng): Promise<number> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    await client.query(
      `insert into adapters (id, namespace_id, name, description, domain, base_model_id, downloads, likes, deprecated_at, deprecation_message, replaced_by,
         deleted_at, purged_at, latest_version, rank, peft_type, task_type, license, tags, size_bytes, best_score, search_text, created_at, updated_at)
       select id, namespace_id, name, description, domain, base_model_id, downloads, likes, deprecated_at, deprecation_message, replaced_by,
         deleted_at, purged_at, latest_version, rank, peft_type, task_type, license, tags, size_bytes, best_score, search_text, created_at, updated_at
       from json_populate_recordset(null::adapters, $1::json)`,
      [JSON.stringify(batch.map((item) => item.adapter))],
    );
    const { rows: versions } = await client.query<{ id: number; adapter_id: string }>(
      `insert into adapter_versions (adapter_id, version, config, config_summary, label, changelog, model_card, card_metadata, size_bytes, warnings,
         lineage, source_job_id, published_by, downloads, yanked_at, yank_reason, created_at)
       select adapter_id, version, config, config_summary, label, changelog, model_card, card_metadata, size_bytes, warnings,
         lineage, source_job_id, published_by, downloads, yanked_at, yank_reason, created_at
       from json_populate_recordset(null::adapter_versions, $1::json)
       returning id, adapter_id`,
      [JSON.stringify(batch.map((item) => item.version))],
    );
    const versionOf = new Map(versions.map((row) => [row.adapter_id, row.id]));

    const blobs = batch.flatMap((item) => item.files.map((file) => ({ sha256: file.sha256, size: file.size, s3_key: file.s3Key, created_at: item.version.created_at })));
    await client.query(
      `insert into blobs (sha256, size, s3_key, created_at) select sha256, size, s3_key, created_at from json_populate_recordset(null::blobs, $1::json) on conflict do nothing`,
      [JSON.stringify(blobs)],
    );
    const files = batch.flatMap((item) => item.files.map((file) => ({ version_id: versionOf.get(item.adapter.id as string), path: file.path, sha256: file.sha256, size: file.size })));
    await client.query(
      `insert into adapter_files (version_id, path, sha256, size) select version_id, path, sha256, size from json_populate_recordset(null::adapter_files, $1::json)`,
      [JSON.stringify(files)],
    );

    // Each score comes from a finished evaluation job, as the runner's completion report records it.
    const jobs: Record<string, unknown>[] = [];
    const results: Record<string, unknown>[] = [];
    for (const item of batch) {
      if (!item.score) continue;
      const task = tasks.get(item.score.taskId)!;
      const versionId = versionOf.get(item.adapter.id as string)!;
      const configHash = createHash('sha256').update(JSON.stringify([task.id, task.version, task.dataSha256, null, SCORING_METHOD])).digest('hex');
      const finished = new Date(new Date(item.version.created_at as string).getTime() + 3_600_000).toISOString();
      const jobId = rng.uuid();
      const wallSeconds = Math.round(60 + rng.next() * 600);
      jobs.push({
        id: jobId, kind: 'evaluate', state: 'succeeded', namespace_id: item.adapter.namespace_id, created_by: namespaceOwner.get(item.adapter.namespace_id as string),
        base_model_id: item.adapter.base_model_id, params: { taskId: task.id, taskVersion: task.version, configHash, limit: null, subjects: [{ key: `adapter-version:${versionId}`, adapterVersionId: versionId }] },
        attempts: 1, max_attempts: 3, cancel_requested: false, summary: { wallSeconds }, created_at: item.version.created_at, queued_at: item.version.created_at,
        started_at: item.version.created_at, finished_at: finished,
      });
      const accuracy = item.score.correct / item.score.total;
      results.push({
        task_id: task.id, task_version: task.version, base_model_id: item.adapter.base_model_id, adapter_version_id: versionId, job_id: jobId,
        correct: item.score.correct, total: item.score.total, accuracy, stderr: Math.sqrt((accuracy * (1 - accuracy)) / item.score.total),
        config_hash: configHash, hardware: 'NVIDIA L4', duration_seconds: wallSeconds, created_at: finished,
      });
    }
    if (jobs.length > 0) {
      await client.query(
        `insert into jobs (id, kind, state, namespace_id, created_by, base_model_id, params, attempts, max_attempts, cancel_requested, summary, created_at, queued_at, started_at, finished_at)
         select id, kind, state, namespace_id, created_by, base_model_id, params, attempts, max_attempts, cancel_requested, summary, created_at, queued_at, started_at, finished_at
         from json_populate_recordset(null::jobs, $1::json)`,
        [JSON.stringify(jobs)],
      );
      await client.query(
        `insert into eval_results (task_id, task_version, base_model_id, adapter_version_id, job_id, correct, total, accuracy, stderr, config_hash, hardware, duration_seconds, created_at)
         select task_id, task_version, base_model_id, adapter_version_id, job_id, correct, total, accuracy, stderr, config_hash, hardware, duration_seconds, created_at
         from json_populate_recordset(null::eval_results, $1::json)`,
        [JSON.stringify(results)],
      );
    }
    await client.query('commit');
    return results.length;
  } catch (error) {
    await client.query('rollback');
    throw error;
  } finally {
    client.release();
  }
}

/**
 * Runs the app's refreshListing on `sample` adapters inside a transaction that is rolled
 * back, and throws if it would change any listing column of a seeded row.
 */
async function checkRefreshListing(pool: pg.Pool, sample: string[]): Promise<void> {
  const snapshot = `select id, to_jsonb(a) - 'created_at' - 'updated_at' as row from adapters a where id = any($1::uuid[]) order by id`;
  const before = (await pool.query<{ id: string; row: unknown }>(snapshot, [sample])).rows;
  const client = await pool.connect();
  let after: { id: string; row: unknown }[];
  try {
    await client.query('begin');
    const db = drizzle(client, { schema }) as unknown as Db;
    for (const id of sample) await refreshListing(db, id);
    after = (await client.query<{ id: string; row: unknown }>(snapshot, [sample])).rows;
  } finally {
    await client.query('rollback');
    client.release();
  }
  const changed = before.filter((row, i) => JSON.stringify(row.row) !== JSON.stringify(after[i]?.row));
  if (changed.length > 0 || after.length !== before.length) {
    const first = changed[0];
    throw new Error(`refreshListing would change ${changed.length} of ${before.length} seeded adapters; first ${first?.id}:\n  seed ${JSON.stringify(first?.row).slice(0, 600)}\n  app  ${JSON.stringify(after.find((row) => row.id === first?.id)?.row).slice(0, 600)}`);
  }
}

/** Seeds `options.adapters` adapters in all, a few of them through the API, and verifies them. */
export async function seedSearchRegistry(options: SeedOptions): Promise<SeedReport> {
  const started = Date.now();
  const { pool, log } = options;
  await fs.mkdir(options.workDir, { recursive: true });

  log('registering base models and benchmark tasks through the API');
  for (const model of BASE_MODELS) await registerBenchBaseModel(options.admin, model, path.join(options.workDir, 'base-models'));
  await registerTasks(options.admin, options.workDir);
  const taskRows = (await pool.query<{ id: string; version: number; data_sha256: string; item_count: number; domain: string }>('select id, version, data_sha256, item_count, domain from benchmark_tasks')).rows;
  const tasks = new Map(taskRows.map((task) => [task.id, { id: task.id, version: task.version, dataSha256: task.data_sha256, itemCount: task.item_count }]));

  const rng = new Rng(options.seed);
  const vocabulary = buildVocabulary(rng);
  const namespaces = generateNamespaces(rng, vocabulary, options.namespaces);
  const ctx: GenerationContext = {
    rng, vocabulary, namespaces, namespaceZipf: new Zipf(namespaces.length, 0.75), takenNames: new Map(),
    tasks: new Map(taskRows.map((task) => [task.domain, { id: task.id, itemCount: task.item_count }])), now: Date.now(),
  };

  log(`publishing ${REFERENCE_ADAPTERS} generated adapters through the API and comparing the stored rows`);
  const { rows: [adminRow] } = await pool.query<{ namespace_id: string; user_id: string }>(
    'select n.id as namespace_id, u.id as user_id from namespaces n join users u on u.namespace_id = n.id where n.name = $1', [options.adminNamespace]);
  const referencePublished = await publishReferences(options, ctx, { id: adminRow!.namespace_id, name: options.adminNamespace, userId: adminRow!.user_id, email: '' });

  log(`inserting ${namespaces.length} users and namespaces`);
  // Every seeded user shares one real argon2id hash, because the benchmark never signs in as them.
  const passwordHash = await argon2Hash(`bench-${options.seed}`);
  await pool.query(
    `insert into namespaces (id, name, kind) select id, name, 'user' from json_populate_recordset(null::namespaces, $1::json)`,
    [JSON.stringify(namespaces.map((ns) => ({ id: ns.id, name: ns.name })))],
  );
  await pool.query(
    `insert into users (id, email, namespace_id, password_hash, is_admin) select id, email, namespace_id, password_hash, false from json_populate_recordset(null::users, $1::json)`,
    [JSON.stringify(namespaces.map((ns) => ({ id: ns.userId, email: ns.email, namespace_id: ns.id, password_hash: passwordHash })))],
  );
  const namespaceOwner = new Map(namespaces.map((ns) => [ns.id, ns.userId]));

  const bulk = options.adapters - referencePublished;
  let inserted = 0;
  let evalResults = 0;
  const sample: string[] = [];
  while (inserted < bulk) {
    const batch: SeedAdapter[] = [];
    for (let i = 0; i < BATCH && inserted + batch.length < bulk; i++) batch.push(generateAdapter(ctx));
    evalResults += await insertBatch(pool, batch, tasks, namespaceOwner, rng);
    // Every 97th adapter goes into the refreshListing check, which covers every kind of row.
    for (const [i, item] of batch.entries()) if ((inserted + i) % 97 === 0) sample.push(item.adapter.id as string);
    inserted += batch.length;
    if (inserted % 10_000 < BATCH) log(`inserted ${inserted} of ${bulk} adapters (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  }

  log('vacuum analyze');
  for (const table of ['adapters', 'adapter_versions', 'adapter_files', 'blobs', 'namespaces', 'users', 'jobs', 'eval_results']) await pool.query(`vacuum analyze ${table}`);

  log(`checking ${sample.length} seeded adapters against the app's refreshListing`);
  await checkRefreshListing(pool, sample);

  const counts = (await pool.query(`select (select count(*) from adapters)::int as adapters,
      (select count(*) from adapters where latest_version is not null and deleted_at is null)::int as listed,
      (select count(*) from namespaces)::int as namespaces, (select count(*) from adapter_versions)::int as versions,
      (select count(*) from eval_results)::int as eval_results`)).rows[0];
  const sizes = (await pool.query<{ relname: string; bytes: string }>(`select relname, pg_total_relation_size(oid)::text as bytes from pg_class where relname in ('adapters', 'adapter_versions')`)).rows;
  return {
    adapters: counts.adapters, listed: counts.listed, namespaces: counts.namespaces, versions: counts.versions, evalResults: counts.eval_results,
    referencePublished, refreshListingChecked: sample.length, seconds: Math.round((Date.now() - started) / 1000),
    tableBytes: Object.fromEntries(sizes.map((row) => [row.relname, Number(row.bytes)])),
  };
}

