import { timingSafeEqual } from 'node:crypto';
import { RUNNER_TOKEN_PREFIX, runnerTokenId } from '@/server/auth';
import { getDb } from '@/server/db';
import { getEnv } from '@/server/env';
import { logger } from '@/server/logger';
import { prometheusText, queueCounts } from '@/server/metrics';
import { playgroundMetricsText } from '@/server/playground/metrics';
import { appMetrics } from '@/server/services/metrics';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

function sameSecret(presented: string, expected: string): boolean {
  const a = Buffer.from(presented);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Job metrics in the Prometheus text format: queue depth for autoscalers (KEDA's metrics-api
 * scaler), then jobs by state, queue wait and duration quantiles, lease expirations and
 * runner heartbeat lag. Callers authenticate with a runner token (`Bearer amr_…`) or with
 * METRICS_TOKEN when it is set.
 */
export async function GET(request: Request) {
  const bearer = request.headers.get('authorization')?.match(/^Bearer\s+(\S+)$/i)?.[1];
  const unauthorized = () => Response.json(
    { error: 'metrics need a runner token (`Authorization: Bearer amr_…`) or METRICS_TOKEN' },
    { status: 401, headers: { 'WWW-Authenticate': 'Bearer' } },
  );
  if (!bearer) return unauthorized();

  try {
    const db = await getDb();
    const metricsToken = getEnv().METRICS_TOKEN;
    const allowed = (metricsToken !== undefined && sameSecret(bearer, metricsToken))
      || (bearer.startsWith(RUNNER_TOKEN_PREFIX) && (await runnerTokenId(db, bearer)) !== null);
    if (!allowed) return unauthorized();
    const text = prometheusText(await queueCounts(db)) + await appMetrics(db) + playgroundMetricsText();
    return new Response(text, { headers: { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Cache-Control': 'no-store' } });
  } catch (error) {
    logger.error({ err: error }, 'metrics: reading the job tables failed');
    return Response.json({ error: 'reading the job tables failed' }, { status: 503 });
  }
}
