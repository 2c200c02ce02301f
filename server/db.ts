import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import * as schema from '@/drizzle/schema';
import { getEnv } from './env';
import { logger } from './logger';

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export const migrationsFolder = path.join(process.cwd(), 'drizzle', 'migrations');

// Next.js bundles route handlers and server components separately, each with its own copy
// of this module. The handle lives on globalThis so that a process opens the database once,
// because two PGlite instances on one folder corrupt it.
const shared = globalThis as typeof globalThis & { __adapterMarketplaceDb?: Promise<Db> };

/**
 * Opens the database once per process and applies pending migrations.
 * With DATABASE_URL set this is a node-postgres pool of DATABASE_POOL_MAX connections, small
 * because each serverless instance has its own. Without it, this is the embedded PGlite database persisted under
 * PGLITE_DIR, which only one process may open at a time.
 */
export function getDb(): Promise<Db> {
  shared.__adapterMarketplaceDb ??= openDb().catch((error: unknown) => {
    shared.__adapterMarketplaceDb = undefined;
    throw error;
  });
  return shared.__adapterMarketplaceDb;
}

async function openDb(): Promise<Db> {
  const env = getEnv();

  if (env.DATABASE_URL) {
    const { Pool } = await import('pg');
    const { drizzle } = await import('drizzle-orm/node-postgres');
    const { migrate } = await import('drizzle-orm/node-postgres/migrator');
    // Idle connections close after 30 s, so a frozen serverless instance keeps few of them open.
    const pool = new Pool({ connectionString: env.DATABASE_URL, max: env.DATABASE_POOL_MAX, idleTimeoutMillis: 30_000 });
    pool.on('error', (error) => logger.error({ err: error }, 'idle database connection failed'));
    const db = drizzle(pool, { schema });
    if (env.DATABASE_MIGRATE_ON_START) await migrate(db, { migrationsFolder });
    logger.info({ driver: 'node-postgres', poolMax: env.DATABASE_POOL_MAX, migrated: env.DATABASE_MIGRATE_ON_START }, 'database ready');
    return db as unknown as Db;
  }

  const { PGlite } = await import('@electric-sql/pglite');
  const { pg_trgm } = await import('@electric-sql/pglite/contrib/pg_trgm');
  const { drizzle } = await import('drizzle-orm/pglite');
  const { migrate } = await import('drizzle-orm/pglite/migrator');
  const client = new PGlite(path.resolve(env.PGLITE_DIR), { extensions: { pg_trgm } });
  const db = drizzle(client, { schema });
  if (env.DATABASE_MIGRATE_ON_START) await migrate(db, { migrationsFolder });
  logger.info({ driver: 'pglite', dir: env.PGLITE_DIR }, 'database ready');
  return db as unknown as Db;
}

/**
 * Lists the tags of the migrations in `folder` that the database has not applied, by the rule
 * drizzle's migrator uses: a migration is applied when its journal timestamp is not newer than
 * the latest row of drizzle.__drizzle_migrations.
 */
export async function pendingMigrations(db: Db, folder = migrationsFolder): Promise<string[]> {
  const journal = JSON.parse(await readFile(path.join(folder, 'meta', '_journal.json'), 'utf8')) as { entries: { tag: string; when: number }[] };
  // node-postgres and PGlite both return { rows }, which the shared Db type leaves unknown.
  const rows = async <T>(query: ReturnType<typeof sql>) => ((await db.execute(query)) as unknown as { rows: T[] }).rows;
  const [table] = await rows<{ name: string | null }>(sql`select to_regclass('drizzle.__drizzle_migrations') as name`);
  let latest = -Infinity;
  if (table?.name) {
    const [row] = await rows<{ latest: string | number | null }>(sql`select max(created_at) as latest from drizzle.__drizzle_migrations`);
    if (row?.latest !== null && row?.latest !== undefined) latest = Number(row.latest);
  }
  return journal.entries.filter((entry) => entry.when > latest).map((entry) => entry.tag);
}
