import { hubResponse } from '@/lib/hf-route';
import { requestCaller } from '@/lib/request-reader';
import { modelInfo } from '@/server/services/hf-compat';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

/** Hub-compatible model info at a revision: `main`, a version number or a commit sha. */
export async function GET(request: Request, context: { params: Promise<{ namespace: string; name: string; revision: string }> }) {
  const { namespace, name, revision } = await context.params;
  return hubResponse(async () => {
    const caller = await requestCaller(request);
    return Response.json(await modelInfo(caller.db, caller, namespace, name, decodeURIComponent(revision)));
  });
}
