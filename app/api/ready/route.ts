import { sql } from 'drizzle-orm';
import { getDb, pendingMigrations } from '@/server/db';
import { getEnv } from '@/server/env';
import { logger } from '@/server/logger';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

/**
 * Readiness: the settings are valid, the database responds and every migration in this build
 * is applied. Returns 503 with the failing checks otherwise. Unlike /api/health it does not
 * call S3, and it reports pending migrations, which a deployment must apply first.
 */
export async function GET() {
  const checks: Record<string, string> = {};
  try {
    getEnv();
    checks.settings = 'ok';
  } catch (error) {
    logger.error({ err: error }, 'readiness check: invalid settings');
    checks.settings = 'invalid';
  }

  if (checks.settings === 'ok') {
    try {
      const db = await getDb();
      await db.execute(sql`select 1`);
      checks.database = 'ok';
      const pending = await pendingMigrations(db);
      checks.migrations = pending.length === 0 ? 'ok' : `pending: ${pending.join(', ')}`;
    } catch (error) {
      logger.error({ err: error }, 'readiness check: database unreachable');
      checks.database = 'unreachable';
    }
  }

  const ready = Object.values(checks).every((value) => value === 'ok') && checks.migrations === 'ok';
  return Response.json({ ready, checks }, { status: ready ? 200 : 503, headers: { 'Cache-Control': 'no-store' } });
}
