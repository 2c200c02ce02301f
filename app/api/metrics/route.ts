import { RUNNER_TOKEN_PREFIX, runnerTokenId } from '@/server/auth';
import { getDb } from '@/server/db';
import { logger } from '@/server/logger';
import { prometheusText, queueCounts } from '@/server/metrics';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

/**
 * Queue depth in the Prometheus text format, for autoscalers (KEDA's metrics-api scaler on
 * Kubernetes). Callers authenticate with a runner token, `Authorization: Bearer amr_…`.
 */
export async function GET(request: Request) {
  const bearer = request.headers.get('authorization')?.match(/^Bearer\s+(\S+)$/i)?.[1];
  const unauthorized = () => Response.json({ error: 'metrics need a runner token (`Authorization: Bearer amr_…`)' }, { status: 401, headers: { 'WWW-Authenticate': 'Bearer' } });
  if (!bearer?.startsWith(RUNNER_TOKEN_PREFIX)) return unauthorized();

  try {
    const db = await getDb();
    if (!(await runnerTokenId(db, bearer))) return unauthorized();
    const text = prometheusText(await queueCounts(db));
    return new Response(text, { headers: { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Cache-Control': 'no-store' } });
  } catch (error) {
    logger.error({ err: error }, 'metrics: reading the queue failed');
    return Response.json({ error: 'reading the queue failed' }, { status: 503 });
  }
}
