import 'server-only';
import { getServerSession } from 'next-auth';
import { headers } from 'next/headers';
import { createCaller } from '@/server/api/root';
import { createContext } from '@/server/api/trpc';
import { authOptions } from '@/server/auth';

/**
 * Creates a tRPC caller for server components, acting as the signed-in user (or anonymous)
 * from the visitor's address, so that rate limits count per visitor and not per server.
 */
export async function serverCaller() {
  const session = (await getServerSession(authOptions())) as { userId?: string } | null;
  const requestHeaders = await headers();
  // Next.js fills X-Forwarded-For with the socket's address when no proxy set it.
  const clientAddress = requestHeaders.get('x-forwarded-for')?.split(',')[0]?.trim() ?? requestHeaders.get('x-real-ip');
  return createCaller(await createContext({ sessionUserId: session?.userId ?? null, clientAddress }));
}
