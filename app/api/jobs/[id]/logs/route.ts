import { TRPCError } from '@trpc/server';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import { getServerSession } from 'next-auth';
import { createCaller } from '@/server/api/root';
import { createContext } from '@/server/api/trpc';
import { authOptions } from '@/server/auth';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

/**
 * Serves a job's events and logs as a text file. It calls `finetune.logs` through the router,
 * so the caller is authorized exactly as for the job page before anything is read.
 */
export async function GET(request: Request, { params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  const authorization = request.headers.get('authorization');
  // A bearer token wins over the cookie session, as in the tRPC route.
  const session = authorization ? null : await getServerSession(authOptions());
  try {
    const caller = createCaller(await createContext({
      authorization,
      sessionUserId: (session as { userId?: string } | null)?.userId ?? null,
      clientAddress: request.headers.get('x-forwarded-for')?.split(',')[0]?.trim() ?? request.headers.get('x-real-ip'),
    }));
    const text = await caller.finetune.logs({ jobId: id });
    return new Response(text, {
      headers: {
        'content-type': 'text/plain; charset=utf-8',
        'content-disposition': `attachment; filename="job-${id}.log"`,
        'cache-control': 'private, no-store',
      },
    });
  } catch (error) {
    if (!(error instanceof TRPCError)) throw error;
    return Response.json({ error: { code: error.code, message: error.message } }, { status: getHTTPStatusCodeFromError(error) });
  }
}
