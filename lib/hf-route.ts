import 'server-only';
import { TRPCError } from '@trpc/server';
import { logger } from '@/server/logger';

/** Runs a Hub-compatible handler, mapping errors to the Hub's JSON error shape and status codes. */
export async function hubResponse(handler: () => Promise<Response>): Promise<Response> {
  try {
    return await handler();
  } catch (error) {
    if (error instanceof TRPCError && error.code === 'NOT_FOUND') {
      // huggingface_hub reads X-Error-Code to raise RepositoryNotFoundError or RevisionNotFoundError.
      const code = error.message.startsWith('revision') ? 'RevisionNotFound' : 'RepoNotFound';
      return Response.json({ error: error.message }, { status: 404, headers: { 'X-Error-Code': code, 'X-Error-Message': error.message } });
    }
    if (error instanceof TRPCError && error.code === 'UNAUTHORIZED') {
      return Response.json({ error: error.message }, { status: 401, headers: { 'X-Error-Message': error.message } });
    }
    logger.error({ err: error }, 'Hub-compatible request failed');
    return Response.json({ error: 'internal error; the server log has the details' }, { status: 500 });
  }
}
