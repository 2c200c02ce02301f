import { fetchRequestHandler } from '@trpc/server/adapters/fetch';
import { getServerSession } from 'next-auth';
import { appRouter } from '@/server/api/root';
import { createContext } from '@/server/api/trpc';
import { authOptions } from '@/server/auth';
import { retryAfterOf } from '@/server/rate-limit';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

// Requests carry JSON only: file bytes go straight to S3, so a larger body is a mistake or abuse.
const MAX_BODY_BYTES = 1024 * 1024;

async function handler(request: Request) {
  const length = Number(request.headers.get('content-length') ?? 0);
  if (length > MAX_BODY_BYTES) {
    return Response.json({ error: { message: `request body of ${length} bytes exceeds the ${MAX_BODY_BYTES}-byte limit; upload files through presigned URLs` } }, { status: 413 });
  }
  const authorization = request.headers.get('authorization');
  // A bearer token wins over the cookie session, so scripts never act with a browser's rights.
  const session = authorization ? null : await getServerSession(authOptions());
  return fetchRequestHandler({
    endpoint: '/api/trpc',
    req: request,
    router: appRouter,
    createContext: () => createContext({
      authorization,
      sessionUserId: (session as { userId?: string } | null)?.userId ?? null,
      // The first X-Forwarded-For entry is the client when a proxy or CDN sits in front.
      clientAddress: request.headers.get('x-forwarded-for')?.split(',')[0]?.trim() ?? request.headers.get('x-real-ip'),
    }),
    // A rate-limited call (HTTP 429) says when to try again; in a batch the longest wait wins.
    responseMeta({ errors }) {
      const waits = errors.map(retryAfterOf).filter((seconds): seconds is number => seconds !== null);
      return waits.length > 0 ? { headers: new Headers({ 'Retry-After': String(Math.max(...waits)) }) } : {};
    },
  });
}

export { handler as GET, handler as POST };
