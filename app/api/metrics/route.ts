import { timingSafeEqual } from 'node:crypto';
import { getDb } from '@/server/db';
import { getEnv } from '@/server/env';
import { logger } from '@/server/logger';
import { appMetrics } from '@/server/services/metrics';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

function authorized(request: Request, token: string | undefined): boolean {
  if (!token) return true;
  const given = Buffer.from(request.headers.get('authorization')?.replace(/^Bearer /, '') ?? '');
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** Prometheus metrics of the job queue; with METRICS_TOKEN set, scrapers must send it as a bearer token. */
export async function GET(request: Request) {
  if (!authorized(request, getEnv().METRICS_TOKEN)) {
    return new Response('metrics need "Authorization: Bearer <METRICS_TOKEN>"\n', { status: 401 });
  }
  try {
    const body = await appMetrics(await getDb());
    return new Response(body, { headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' } });
  } catch (error) {
    logger.error({ err: error }, 'metrics collection failed');
    return new Response('metrics collection failed; see the app log\n', { status: 500 });
  }
}
