import { hubResponse } from '@/lib/hf-route';
import { requestCaller } from '@/lib/request-reader';
import { modelInfo } from '@/server/services/hf-compat';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

/** Hub-compatible model info at the latest version (`GET /api/models/{namespace}/{name}`). */
export async function GET(request: Request, context: { params: Promise<{ namespace: string; name: string }> }) {
  const { namespace, name } = await context.params;
  return hubResponse(async () => {
    const caller = await requestCaller(request);
    return Response.json(await modelInfo(caller.db, caller, namespace, name, 'main'));
  });
}
