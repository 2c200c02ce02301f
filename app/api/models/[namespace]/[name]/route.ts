import { hubResponse } from '@/lib/hf-route';
import { getDb } from '@/server/db';
import { modelInfo } from '@/server/services/hf-compat';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

/** Hub-compatible model info at the latest version (`GET /api/models/{namespace}/{name}`). */
export async function GET(_request: Request, context: { params: Promise<{ namespace: string; name: string }> }) {
  const { namespace, name } = await context.params;
  return hubResponse(async () => Response.json(await modelInfo(await getDb(), namespace, name, 'main')));
}
