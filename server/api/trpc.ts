import { createHash } from 'node:crypto';
import { initTRPC, TRPCError } from '@trpc/server';
import { z, ZodError } from 'zod';
import { runnerTokenId, userByApiToken, userById, type SessionUser, API_TOKEN_PREFIX, RUNNER_TOKEN_PREFIX } from '../auth';
import type { TeamRole } from '@/drizzle/schema';
import { getDb, type Db } from '../db';
import { getEnv } from '../env';
import { hit, type LimitKind } from '../rate-limit';
import { authorize, type Rule, type Scope, type Target } from './authz';
import { logger } from '../logger';

export interface Context {
  db: Db;
  user: SessionUser | null;
  // Scopes of the API token used, or null for a browser session (which has every scope).
  scopes: string[] | null;
  // The API token used and its limits (one namespace, or chosen adapters); null for a session.
  tokenId: string | null;
  tokenNamespaceId: string | null;
  tokenAdapterIds: string[] | null;
  runnerTokenId: string | null;
  // Identifies the client for per-day download counting: the user, or else the address.
  clientKey: string;
  // The client's address as the first proxy saw it; rate limits count per address too.
  clientAddress: string;
}

/**
 * Builds the request context from an Authorization header or a signed-in session's user id.
 * It needs no HTTP request object, so tests and scripts can build one directly.
 */
export async function createContext(input: { authorization?: string | null; sessionUserId?: string | null; clientAddress?: string | null }): Promise<Context> {
  const db = await getDb();
  const context: Context = {
    db, user: null, scopes: null, tokenId: null, tokenNamespaceId: null, tokenAdapterIds: null, runnerTokenId: null, clientKey: '', clientAddress: input.clientAddress ?? 'unknown',
  };
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
    context.tokenId = found.tokenId;
    context.tokenNamespaceId = found.namespaceId;
    context.tokenAdapterIds = found.adapterIds;
  } else if (input.sessionUserId) {
    context.user = await userById(db, input.sessionUserId);
  }
  context.clientKey = createHash('sha256').update(context.user ? `user:${context.user.id}` : `address:${context.clientAddress}`).digest('hex');
  return context;
}

/**
 * Procedure metadata. `rule` is how the procedure is authorized (see authz.ts); `expensive`
 * marks a query that counts against the expensive-read rate limit.
 */
export interface Meta {
  rule?: Rule;
  expensive?: boolean;
}

const t = initTRPC.context<Context>().meta<Meta>().create({
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

/**
 * Counts the request against the caller's and the address's rate limits (HTTP 429 when over).
 * NOTE: the address is the first X-Forwarded-For entry. A client can forge it unless a proxy
 * or CDN in front overwrites the header, but the per-token limit does not depend on it.
 */
async function limitRate(ctx: Context, kind: LimitKind): Promise<void> {
  const env = getEnv();
  // Anonymous callers get a key apart from the address's, which all callers there share.
  let caller = `anonymous:${ctx.clientAddress}`;
  if (ctx.tokenId) caller = `token:${ctx.tokenId}`;
  else if (ctx.user) caller = `user:${ctx.user.id}`;
  const [perCaller, perAddress] = kind === 'write'
    ? [env.RATE_LIMIT_WRITES, env.RATE_LIMIT_ADDRESS_WRITES]
    : [env.RATE_LIMIT_EXPENSIVE_READS, env.RATE_LIMIT_ADDRESS_EXPENSIVE_READS];
  await hit(ctx.db, `${kind}:${caller}`, perCaller, env.RATE_LIMIT_WINDOW_SECONDS);
  await hit(ctx.db, `${kind}:address:${ctx.clientAddress}`, perAddress, env.RATE_LIMIT_WINDOW_SECONDS);
}

/**
 * Checks the procedure's rule, then counts the request against the rate limits. Every
 * exported procedure builder runs this middleware before input parsing and the handler. A procedure without a rule is rejected, so forgetting one fails
 * closed. Namespace rules put the resolved namespace and role in `ctx.access`.
 */
export const authorizeMiddleware = t.middleware(async ({ ctx, meta, type, path, getRawInput, next }) => {
  const rule = meta?.rule;
  if (!rule) {
    logger.error({ path }, 'procedure has no authorization rule');
    throw new TRPCError({ code: 'INTERNAL_SERVER_ERROR', message: `procedure ${path} has no authorization rule` });
  }
  const access = await authorize(ctx, rule, rule.kind === 'namespace' ? await getRawInput() : undefined);
  // Runners poll, heartbeat and report all the time; their tokens are issued by administrators.
  if (rule.kind !== 'runner' && (type === 'mutation' || meta?.expensive)) await limitRate(ctx, type === 'mutation' ? 'write' : 'expensive-read');
  return next({ ctx: { ...ctx, access } });
});

const authorized = t.procedure.use(authorizeMiddleware);

/** Builds a procedure authorized by `rule`; the other builders are shorthands for it. */
export function procedure(rule: Rule) {
  return authorized.meta({ rule });
}

export const publicProcedure = procedure({ kind: 'public' });

/** Builds a procedure for a signed-in user, or an API token that has `scope`, acting on the caller's own things. */
export function userProcedure(scope: Scope) {
  return procedure({ kind: 'user', scope }).use(({ ctx, next }) => next({ ctx: { ...ctx, user: ctx.user! } }));
}

/**
 * Builds a procedure for a caller with at least `role` in the namespace that `target` names
 * (and `scope` on its API token). The handler reads that namespace from `ctx.access`.
 */
export function namespaceProcedure(scope: Scope, role: TeamRole, target: Target) {
  return procedure({ kind: 'namespace', scope, role, target }).use(({ ctx, next }) => next({ ctx: { ...ctx, user: ctx.user!, access: ctx.access! } }));
}

export const adminProcedure = procedure({ kind: 'admin' }).use(({ ctx, next }) => next({ ctx: { ...ctx, user: ctx.user! } }));

export const runnerProcedure = procedure({ kind: 'runner' }).use(({ ctx, next }) => next({ ctx: { ...ctx, runnerTokenId: ctx.runnerTokenId! } }));
