import { hubResponse } from '@/lib/hf-route';
import { getDb } from '@/server/db';
import { modelInfo } from '@/server/services/hf-compat';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

/** Hub-compatible model info at a revision: `main`, a version number or a commit sha. */
export async function GET(_request: Request, context: { params: Promise<{ namespace: string; name: string; revision: string }> }) {
  const { namespace, name, revision } = await context.params;
  return hubResponse(async () => Response.json(await modelInfo(await getDb(), namespace, name, decodeURIComponent(revision))));
}
