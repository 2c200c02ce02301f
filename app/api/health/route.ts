import { sql } from 'drizzle-orm';
import { getDb } from '@/server/db';
import { logger } from '@/server/logger';
import { checkBucket } from '@/server/storage';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

/** Checks that the database and the S3 bucket respond; returns 503 when either does not. */
export async function GET() {
  const checks: Record<string, 'ok' | string> = {};
  try {
    const db = await getDb();
    await db.execute(sql`select 1`);
    checks.database = 'ok';
  } catch (error) {
    logger.error({ err: error }, 'health check: database unreachable');
    checks.database = 'unreachable';
  }
  try {
    await checkBucket();
    checks.storage = 'ok';
  } catch (error) {
    logger.error({ err: error }, 'health check: storage unreachable');
    checks.storage = 'unreachable';
  }
  const ok = Object.values(checks).every((value) => value === 'ok');
  return Response.json({ ok, checks }, { status: ok ? 200 : 503 });
}
