import 'server-only';
import { getServerSession } from 'next-auth';
import { createContext, type Context } from '@/server/api/trpc';
import { authOptions } from '@/server/auth';

/**
 * Builds the caller of an App Router route handler from the same credentials the tRPC route
 * reads: a bearer API token wins over the cookie session. Throws UNAUTHORIZED for an unknown,
 * revoked or expired token, as the API does.
 */
export async function requestCaller(request: Request): Promise<Context> {
  const authorization = request.headers.get('authorization');
  const session = authorization ? null : await getServerSession(authOptions());
  return createContext({
    authorization,
    sessionUserId: (session as { userId?: string } | null)?.userId ?? null,
    clientAddress: request.headers.get('x-forwarded-for')?.split(',')[0]?.trim() ?? request.headers.get('x-real-ip'),
  });
}
