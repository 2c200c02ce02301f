import { hubResponse } from '@/lib/hf-route';
import { requestCaller } from '@/lib/request-reader';
import { modelTree } from '@/server/services/hf-compat';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

/** Hub-compatible file listing of a revision; adapter versions are flat, so one page contains every file. */
export async function GET(request: Request, context: { params: Promise<{ namespace: string; name: string; revision: string }> }) {
  const { namespace, name, revision } = await context.params;
  return hubResponse(async () => {
    const caller = await requestCaller(request);
    return Response.json(await modelTree(caller.db, caller, namespace, name, decodeURIComponent(revision)));
  });
}
