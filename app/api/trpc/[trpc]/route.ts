import { fetchRequestHandler } from '@trpc/server/adapters/fetch';
import { getServerSession } from 'next-auth';
import { appRouter } from '@/server/api/root';
import { createContext } from '@/server/api/trpc';
import { authOptions } from '@/server/auth';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

async function handler(request: Request) {
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
  });
}

export { handler as GET, handler as POST };
