import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import * as schema from '@/drizzle/schema';
import { loadCloudSecrets } from '@/server/cloud-secrets';
import type { Db } from '@/server/db';
import { queueCounts } from '@/server/metrics';
import { queueMetricsRecord } from './emf';

/**
 * The operations Lambda function. It handles two kinds of events:
 * - CloudFormation custom resource events (through the CDK provider framework): Create and
 *   Update apply pending migrations; Delete does nothing, because a schema is never rolled back.
 * - `{ "action": "publish-queue-metrics" }` from a schedule: counts queued and running jobs and
 *   prints them in CloudWatch's embedded metric format, which Lambda's log delivery turns into
 *   metrics without any network call from the function.
 * Settings: DATABASE_SECRET_ARN (or DATABASE_URL) and STAGE.
 */

// The bundle ships the SQL migrations beside index.mjs.
const migrationsFolder = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');

interface CustomResourceEvent {
  RequestType: 'Create' | 'Update' | 'Delete';
  PhysicalResourceId?: string;
}

type OpsEvent = CustomResourceEvent | { action: 'publish-queue-metrics' };

async function withDatabase<T>(work: (db: Db) => Promise<T>): Promise<T> {
  await loadCloudSecrets();
  if (!process.env.DATABASE_URL) throw new Error('DATABASE_URL or DATABASE_SECRET_ARN must be set');
  const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 1 });
  try {
    return await work(drizzle(pool, { schema }) as unknown as Db);
  } finally {
    await pool.end();
  }
}

export async function handler(event: OpsEvent): Promise<unknown> {
  if ('RequestType' in event) {
    const physicalResourceId = event.PhysicalResourceId ?? 'database-migrations';
    if (event.RequestType === 'Delete') return { PhysicalResourceId: physicalResourceId };
    const started = Date.now();
    await withDatabase((db) => migrate(db as Parameters<typeof migrate>[0], { migrationsFolder }));
    console.log(JSON.stringify({ level: 'info', msg: 'migrations applied', requestType: event.RequestType, ms: Date.now() - started }));
    return { PhysicalResourceId: physicalResourceId };
  }
  if (event.action === 'publish-queue-metrics') {
    const counts = await withDatabase(queueCounts);
    console.log(JSON.stringify(queueMetricsRecord(process.env.STAGE ?? 'unknown', counts, Date.now())));
    return counts;
  }
  throw new Error(`unknown event: ${JSON.stringify(event).slice(0, 200)}`);
}
