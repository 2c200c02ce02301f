import { TRPCError } from '@trpc/server';
import { and, eq, isNull } from 'drizzle-orm';
import { z } from 'zod';
import { adapters, namespaces } from '@/drizzle/schema';
import { userByCredentials } from '../../auth';
import { createApiToken, listApiTokens, revokeApiToken, signUp, tokenScopes } from '../../services/accounts';
import { recordAudit } from '../../services/audit';
import { roleIn, type Caller } from '../authz';
import { publicProcedure, router, userProcedure } from '../trpc';

const tokenRequest = z.object({
  name: z.string().min(1).max(100),
  scopes: z.array(z.enum(tokenScopes)).default(['read', 'write', 'fine-tune', 'evaluate']),
  expiresInDays: z.number().int().min(1).max(3650).nullable().default(null),
});

const tokenLimits = z.object({
  // The token acts only in this namespace (the caller's own or a team it belongs to).
  namespace: z.string().min(1).max(100).nullable().default(null),
  // The token acts only on these adapters, named `namespace/name`.
  adapters: z.array(z.string().regex(/^[^/]+\/[^/]+$/, 'name adapters as namespace/name')).min(1).max(100).nullable().default(null),
});

/**
 * Resolves a new token's limits to ids, checking that the caller has a role where the token
 * will act. A namespace or adapter the caller cannot see is NOT_FOUND.
 */
async function resolveLimits(caller: Caller, limits: z.infer<typeof tokenLimits>) {
  let namespaceId: string | null = null;
  if (limits.namespace) {
    const [found] = await caller.db.select({ id: namespaces.id }).from(namespaces).where(eq(namespaces.name, limits.namespace)).limit(1);
    if (!found || !(await roleIn(caller, found.id))) throw new TRPCError({ code: 'NOT_FOUND', message: `namespace ${limits.namespace} you belong to not found` });
    namespaceId = found.id;
  }
  let adapterIds: string[] | null = null;
  if (limits.adapters) {
    adapterIds = [];
    for (const ref of limits.adapters) {
      const [namespace, name] = ref.split('/') as [string, string];
      const [found] = await caller.db.select({ id: adapters.id, namespaceId: adapters.namespaceId }).from(adapters)
        .innerJoin(namespaces, eq(namespaces.id, adapters.namespaceId))
        .where(and(eq(namespaces.name, namespace), eq(adapters.name, name), isNull(adapters.deletedAt))).limit(1);
      if (!found || !(await roleIn(caller, found.namespaceId))) throw new TRPCError({ code: 'NOT_FOUND', message: `adapter ${ref} in a namespace you belong to not found` });
      if (namespaceId && found.namespaceId !== namespaceId) throw new TRPCError({ code: 'BAD_REQUEST', message: `adapter ${ref} is outside namespace ${limits.namespace}, the token's namespace limit` });
      adapterIds.push(found.id);
    }
  }
  return { namespaceId, adapterIds };
}

export const authRouter = router({
  signUp: publicProcedure
    .input(z.object({ email: z.string().email(), password: z.string().max(1000), namespace: z.string() }))
    .mutation(({ ctx, input }) => signUp(ctx.db, input)),

  me: publicProcedure.query(({ ctx }) => ctx.user && { email: ctx.user.email, namespace: ctx.user.namespace, isAdmin: ctx.user.isAdmin }),

  /** Exchanges email and password for an API token, for the CLI's `login`. */
  issueToken: publicProcedure
    .input(tokenRequest.extend({ email: z.string().email(), password: z.string().max(1000) }))
    .mutation(async ({ ctx, input }) => {
      const user = await userByCredentials(ctx.db, input.email, input.password);
      if (!user) throw new TRPCError({ code: 'UNAUTHORIZED', message: `wrong email or password for ${input.email}` });
      if (input.scopes.includes('admin') && !user.isAdmin) throw new TRPCError({ code: 'FORBIDDEN', message: 'only administrators may hold the admin scope' });
      const created = await createApiToken(ctx.db, { userId: user.id, name: input.name, scopes: input.scopes, expiresInDays: input.expiresInDays });
      await recordAudit(ctx.db, { namespaceId: user.namespaceId, actorUserId: user.id, action: 'token.create', target: created.prefix, details: { name: input.name, scopes: input.scopes } });
      return { ...created, namespace: user.namespace };
    }),

  /**
   * Creates an API token for the caller. Its secret is returned once. `namespace` and
   * `adapters` limit where it acts; an API token may only create tokens with its own scopes.
   */
  createToken: userProcedure('admin').input(tokenRequest.extend(tokenLimits.shape)).mutation(async ({ ctx, input }) => {
    if (input.scopes.includes('admin') && !ctx.user.isAdmin) throw new TRPCError({ code: 'FORBIDDEN', message: 'only administrators may hold the admin scope' });
    const missing = ctx.scopes ? input.scopes.filter((scope) => !ctx.scopes!.includes(scope)) : [];
    if (missing.length > 0) throw new TRPCError({ code: 'FORBIDDEN', message: `this API token lacks the scopes ${missing.join(', ')}, so it cannot grant them` });
    const limits = await resolveLimits(ctx, input);
    // A limited token may only create tokens limited at least as narrowly.
    if (ctx.tokenAdapterIds || (ctx.tokenNamespaceId && limits.namespaceId !== ctx.tokenNamespaceId)) {
      throw new TRPCError({ code: 'FORBIDDEN', message: 'this API token is limited to a namespace or to adapters; create other tokens from a browser session or an unlimited token' });
    }
    const created = await createApiToken(ctx.db, { userId: ctx.user.id, name: input.name, scopes: input.scopes, expiresInDays: input.expiresInDays, ...limits });
    await recordAudit(ctx.db, {
      namespaceId: ctx.user.namespaceId, actorUserId: ctx.user.id, action: 'token.create', target: created.prefix,
      details: { name: input.name, scopes: input.scopes, namespace: input.namespace, adapters: input.adapters },
    });
    // A token limited to a team shows in that team's log too, where its admins can revoke it.
    if (limits.namespaceId && limits.namespaceId !== ctx.user.namespaceId) {
      await recordAudit(ctx.db, { namespaceId: limits.namespaceId, actorUserId: ctx.user.id, action: 'token.create', target: created.prefix, details: { name: input.name, scopes: input.scopes } });
    }
    return created;
  }),

  /** Lists the caller's API tokens: name, prefix, scopes, limits, expiry and last use; never the secret. */
  tokens: userProcedure('read').query(({ ctx }) => listApiTokens(ctx.db, ctx.user.id)),

  /** Revokes one of the caller's API tokens; requests with it fail from then on. */
  revokeToken: userProcedure('admin').input(z.object({ id: z.string().uuid() })).mutation(async ({ ctx, input }) => {
    const revoked = await revokeApiToken(ctx.db, { userId: ctx.user.id, id: input.id });
    await recordAudit(ctx.db, { namespaceId: ctx.user.namespaceId, actorUserId: ctx.user.id, action: 'token.revoke', target: revoked.prefix });
    return revoked;
  }),
});
