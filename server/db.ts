import path from 'node:path';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import * as schema from '@/drizzle/schema';
import { getEnv } from './env';
import { logger } from './logger';

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

const migrationsFolder = path.join(process.cwd(), 'drizzle', 'migrations');

// Next.js bundles route handlers and server components separately, each with its own copy
// of this module. The handle lives on globalThis so that a process opens the database once,
// because two PGlite instances on one folder corrupt it.
const shared = globalThis as typeof globalThis & { __adapterMarketplaceDb?: Promise<Db> };

/**
 * Opens the database once per process and applies pending migrations.
 * With DATABASE_URL set this is a small node-postgres pool, small because each serverless
 * instance has its own. Without it, this is the embedded PGlite database persisted under
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
    const pool = new Pool({ connectionString: env.DATABASE_URL, max: 5 });
    pool.on('error', (error) => logger.error({ err: error }, 'idle database connection failed'));
    const db = drizzle(pool, { schema });
    await migrate(db, { migrationsFolder });
    logger.info({ driver: 'node-postgres' }, 'database ready');
    return db as unknown as Db;
  }

  const { PGlite } = await import('@electric-sql/pglite');
  const { pg_trgm } = await import('@electric-sql/pglite/contrib/pg_trgm');
  const { drizzle } = await import('drizzle-orm/pglite');
  const { migrate } = await import('drizzle-orm/pglite/migrator');
  const client = new PGlite(path.resolve(env.PGLITE_DIR), { extensions: { pg_trgm } });
  const db = drizzle(client, { schema });
  await migrate(db, { migrationsFolder });
  logger.info({ driver: 'pglite', dir: env.PGLITE_DIR }, 'database ready');
  return db as unknown as Db;
}
