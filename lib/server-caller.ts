import 'server-only';
import { getServerSession } from 'next-auth';
import { createCaller } from '@/server/api/root';
import { createContext } from '@/server/api/trpc';
import { authOptions } from '@/server/auth';

/** Creates a tRPC caller for server components, acting as the signed-in user (or anonymous). */
export async function serverCaller() {
  const session = (await getServerSession(authOptions())) as { userId?: string } | null;
  return createCaller(await createContext({ sessionUserId: session?.userId ?? null }));
}
