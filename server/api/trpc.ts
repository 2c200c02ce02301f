import { createHash } from 'node:crypto';
import { initTRPC, TRPCError } from '@trpc/server';
import { z, ZodError } from 'zod';
import { runnerTokenId, userByApiToken, userById, type SessionUser, API_TOKEN_PREFIX, RUNNER_TOKEN_PREFIX } from '../auth';
import { getDb, type Db } from '../db';
import { logger } from '../logger';

export interface Context {
  db: Db;
  user: SessionUser | null;
  // Scopes of the API token used, or null for a browser session (which has every scope).
  scopes: string[] | null;
  runnerTokenId: string | null;
  // Identifies the client for per-day download counting: the user, or else the address.
  clientKey: string;
}

/**
 * Builds the request context from an Authorization header or a signed-in session's user id.
 * It needs no HTTP request object, so tests and scripts can build one directly.
 */
export async function createContext(input: { authorization?: string | null; sessionUserId?: string | null; clientAddress?: string | null }): Promise<Context> {
  const db = await getDb();
  const context: Context = { db, user: null, scopes: null, runnerTokenId: null, clientKey: '' };
  const bearer = input.authorization?.match(/^Bearer\s+(\S+)$/i)?.[1];

  if (bearer?.startsWith(RUNNER_TOKEN_PREFIX)) {
    context.runnerTokenId = await runnerTokenId(db, bearer);
    if (!context.runnerTokenId) throw new TRPCError({ code: 'UNAUTHORIZED', message: 'runner token is unknown or revoked; ask an admin for a new one' });
  } else if (bearer) {
    if (!bearer.startsWith(API_TOKEN_PREFIX)) throw new TRPCError({ code: 'UNAUTHORIZED', message: `API tokens start with ${API_TOKEN_PREFIX}; create one in Settings → Tokens` });
    const found = await userByApiToken(db, bearer);
    if (!found) throw new TRPCError({ code: 'UNAUTHORIZED', message: 'API token is unknown, revoked or expired; create a new one in Settings → Tokens' });
    context.user = found.user;
    context.scopes = found.scopes;
  } else if (input.sessionUserId) {
    context.user = await userById(db, input.sessionUserId);
  }
  context.clientKey = createHash('sha256').update(context.user ? `user:${context.user.id}` : `address:${input.clientAddress ?? 'unknown'}`).digest('hex');
  return context;
}

const t = initTRPC.context<Context>().create({
  errorFormatter({ shape, error }) {
    if (error.code === 'INTERNAL_SERVER_ERROR') {
      logger.error({ err: error.cause ?? error, path: shape.data.path }, 'request failed');
      // Raw errors stay in the logs; clients get a stable message.
      return { ...shape, message: 'internal error; the server log has the details', data: { ...shape.data, stack: undefined, zodError: null } };
    }
    if (error.cause instanceof ZodError) {
      // One readable sentence per field in place of the raw issue list.
      const fields = error.cause.issues.map((issue) => `${issue.path.length ? issue.path.join('.') : 'input'}: ${issue.message}`);
      return { ...shape, message: `invalid input: ${fields.join('; ')}`, data: { ...shape.data, stack: undefined, zodError: z.flattenError(error.cause) } };
    }
    return { ...shape, data: { ...shape.data, stack: undefined, zodError: null } };
  },
});

export const router = t.router;
export const createCallerFactory = t.createCallerFactory;

export const publicProcedure = t.procedure;

/** Builds a procedure for a signed-in user, or an API token that has `scope`. */
export function userProcedure(scope: 'read' | 'write' | 'fine-tune' | 'evaluate' | 'admin') {
  return t.procedure.use(({ ctx, next }) => {
    if (!ctx.user) throw new TRPCError({ code: 'UNAUTHORIZED', message: 'sign in or pass an API token as `Authorization: Bearer amk_…`' });
    if (ctx.scopes && !ctx.scopes.includes(scope)) throw new TRPCError({ code: 'FORBIDDEN', message: `this API token lacks the "${scope}" scope; create a token with it` });
    return next({ ctx: { ...ctx, user: ctx.user } });
  });
}

export const adminProcedure = t.procedure.use(({ ctx, next }) => {
  if (!ctx.user) throw new TRPCError({ code: 'UNAUTHORIZED', message: 'sign in or pass an API token as `Authorization: Bearer amk_…`' });
  if (!ctx.user.isAdmin) throw new TRPCError({ code: 'FORBIDDEN', message: 'only administrators may do this' });
  if (ctx.scopes && !ctx.scopes.includes('admin')) throw new TRPCError({ code: 'FORBIDDEN', message: 'this API token lacks the "admin" scope; create an administrator token with it' });
  return next({ ctx: { ...ctx, user: ctx.user } });
});

export const runnerProcedure = t.procedure.use(({ ctx, next }) => {
  if (!ctx.runnerTokenId) throw new TRPCError({ code: 'UNAUTHORIZED', message: 'runner procedures need a runner token (`Authorization: Bearer amr_…`)' });
  return next({ ctx: { ...ctx, runnerTokenId: ctx.runnerTokenId } });
});
