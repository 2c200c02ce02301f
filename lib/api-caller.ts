import 'server-only';
import { TRPCError } from '@trpc/server';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import { createCaller } from '@/server/api/root';
import { createContext } from '@/server/api/trpc';
import { logger } from '@/server/logger';
import { retryAfterOf } from '@/server/rate-limit';

/**
 * Creates a tRPC caller for a route handler from its request's bearer token and client
 * address, so the procedure's authorization rule and rate limits apply as over /api/trpc.
 */
export async function requestCaller(request: Request) {
  const clientAddress = request.headers.get('x-forwarded-for')?.split(',')[0]?.trim() ?? request.headers.get('x-real-ip');
  return createCaller(await createContext({ authorization: request.headers.get('authorization'), clientAddress }));
}

/** Maps a tRPC error to a JSON error response with its HTTP status; other errors are logged and hidden. */
export function errorResponse(error: unknown, what: string): Response {
  if (error instanceof TRPCError) {
    const headers: Record<string, string> = {};
    const retryAfter = retryAfterOf(error);
    if (retryAfter !== null) headers['Retry-After'] = String(retryAfter);
    return Response.json({ error: error.message }, { status: getHTTPStatusCodeFromError(error), headers });
  }
  logger.error({ err: error }, `${what} failed`);
  return Response.json({ error: 'internal error; the server log has the details' }, { status: 500 });
}
