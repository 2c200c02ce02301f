import { hubResponse } from '@/lib/hf-route';
import { getDb } from '@/server/db';
import { modelTree } from '@/server/services/hf-compat';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

/** Hub-compatible file listing of a revision; adapter versions are flat, so one page contains every file. */
export async function GET(_request: Request, context: { params: Promise<{ namespace: string; name: string; revision: string }> }) {
  const { namespace, name, revision } = await context.params;
  return hubResponse(async () => Response.json(await modelTree(await getDb(), namespace, name, decodeURIComponent(revision))));
}
