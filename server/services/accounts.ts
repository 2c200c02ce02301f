import { TRPCError } from '@trpc/server';
import { and, count, desc, eq, isNull, sql } from 'drizzle-orm';
import { apiTokens, namespaces, oauthAccounts, runnerTokens, users } from '@/drizzle/schema';
import { API_TOKEN_PREFIX, hashPassword, newTokenSecret, RUNNER_TOKEN_PREFIX } from '../auth';
import type { Caller } from '../api/authz';
import { roleAtLeast, roleIn } from '../api/authz';
import type { Db } from '../db';
import { logger } from '../logger';
import { badRequest, conflict, notFound } from './errors';

export const NAMESPACE_NAME = /^[a-z0-9][a-z0-9-]{1,38}$/;
export const tokenScopes = ['read', 'write', 'fine-tune', 'evaluate', 'admin'] as const;

/** Creates a user and its namespace. The first user of an installation becomes its administrator. */
export async function signUp(db: Db, input: { email: string; password: string; namespace: string }) {
  const email = input.email.trim().toLowerCase();
  if (!NAMESPACE_NAME.test(input.namespace)) {
    throw badRequest(`user name ${JSON.stringify(input.namespace)} is invalid; use 2-39 lowercase letters, digits or dashes, starting with a letter or digit`);
  }
  if (input.password.length < 8) throw badRequest('password must have at least 8 characters');
  const passwordHash = await hashPassword(input.password);

  return db.transaction(async (tx) => {
    const [taken] = await tx.select({ id: users.id }).from(users).where(eq(users.email, email)).limit(1);
    if (taken) throw conflict(`an account for ${email} already exists; sign in instead`);
    const [namespace] = await tx.insert(namespaces).values({ name: input.namespace, kind: 'user' }).onConflictDoNothing().returning({ id: namespaces.id });
    if (!namespace) throw conflict(`user name ${input.namespace} is taken; pick another`);
    const [{ value: existing }] = await tx.select({ value: count() }).from(users) as [{ value: number }];
    const [user] = await tx.insert(users).values({ email, namespaceId: namespace.id, passwordHash, isAdmin: Number(existing) === 0 }).returning({ id: users.id, isAdmin: users.isAdmin });
    logger.info({ userId: user!.id, namespace: input.namespace, isAdmin: user!.isAdmin }, 'user signed up');
    return { userId: user!.id, namespace: input.namespace, isAdmin: user!.isAdmin };
  });
}

/**
 * Derives a namespace name from an OAuth login: lowercase, characters outside letters, digits
 * and dashes turned into dashes, at most 39 characters, and `suffix` appended when given.
 */
export function namespaceFromLogin(login: string, suffix = ''): string {
  let base = login.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '');
  if (base.length === 0) base = 'user';
  if (base.length < 2) base = `${base}-user`;
  return `${base.slice(0, 39 - suffix.length).replace(/-+$/, '')}${suffix}`;
}

// Candidates tried before giving up on a free namespace: the login, then login-2 … login-20.
const NAMESPACE_CANDIDATES = 20;

/**
 * Returns the user an OAuth identity signs in as. The first sign-in of an identity creates a
 * user and a personal namespace named after the login (with -2, -3 … when taken).
 * Later sign-ins find the same user by the provider's account id, even after the login changed.
 * An identity is never linked to an existing account by email, because a provider's email
 * address may be unverified; an email that belongs to another account is not stored.
 */
export async function linkOAuthAccount(db: Db, input: { provider: string; providerAccountId: string; login: string; email: string | null }) {
  const find = async () => {
    const [row] = await db.select({ userId: oauthAccounts.userId, namespace: namespaces.name }).from(oauthAccounts)
      .innerJoin(users, eq(users.id, oauthAccounts.userId)).innerJoin(namespaces, eq(namespaces.id, users.namespaceId))
      .where(and(eq(oauthAccounts.provider, input.provider), eq(oauthAccounts.providerAccountId, input.providerAccountId))).limit(1);
    return row ?? null;
  };
  const existing = await find();
  if (existing) return { ...existing, created: false };

  try {
    return await db.transaction(async (tx) => {
      let namespaceId: string | null = null;
      let name = '';
      for (let attempt = 1; attempt <= NAMESPACE_CANDIDATES && !namespaceId; attempt++) {
        name = namespaceFromLogin(input.login, attempt === 1 ? '' : `-${attempt}`);
        const [created] = await tx.insert(namespaces).values({ name, kind: 'user' }).onConflictDoNothing().returning({ id: namespaces.id });
        namespaceId = created?.id ?? null;
      }
      if (!namespaceId) throw conflict(`namespaces ${namespaceFromLogin(input.login)} to ${name} are all taken; sign up with email and a namespace of your choice`);

      // Accounts without an email of their own get a placeholder under the reserved .invalid domain.
      const offered = input.email?.trim().toLowerCase() || null;
      const [taken] = offered ? await tx.select({ id: users.id }).from(users).where(eq(users.email, offered)).limit(1) : [];
      const email = offered && !taken ? offered : `${input.provider}-${input.providerAccountId}@users.invalid`;
      const [{ value: userCount }] = await tx.select({ value: count() }).from(users) as [{ value: number }];
      const [user] = await tx.insert(users).values({ email, namespaceId, passwordHash: null, isAdmin: Number(userCount) === 0 }).returning({ id: users.id, isAdmin: users.isAdmin });
      await tx.insert(oauthAccounts).values({ userId: user!.id, provider: input.provider, providerAccountId: input.providerAccountId });
      logger.info({ userId: user!.id, namespace: name, provider: input.provider, isAdmin: user!.isAdmin }, 'user signed up through OAuth');
      return { userId: user!.id, namespace: name, created: true };
    });
  } catch (error) {
    // A concurrent first sign-in of the same identity won the unique index; use its user.
    const raced = await find();
    if (raced) return { ...raced, created: false };
    throw error;
  }
}

/**
 * Creates an API token and returns its secret once; only the sha256 is stored, with a visible
 * prefix to tell tokens apart. `namespaceId` limits it to one namespace and `adapterIds` to
 * chosen adapters; the caller checks that the user may act there.
 */
export async function createApiToken(db: Db, input: {
  userId: string; name: string; scopes: (typeof tokenScopes)[number][]; expiresInDays: number | null; namespaceId?: string | null; adapterIds?: string[] | null;
}) {
  if (input.scopes.length === 0) throw badRequest(`choose at least one scope: ${tokenScopes.join(', ')}`);
  if (input.adapterIds && input.adapterIds.length === 0) throw badRequest('adapterIds is empty; leave it out for a token not limited to adapters, or name at least one');
  const token = newTokenSecret(API_TOKEN_PREFIX);
  const [row] = await db.insert(apiTokens).values({
    userId: input.userId, name: input.name, prefix: token.prefix, tokenHash: token.hash, scopes: input.scopes,
    expiresAt: input.expiresInDays ? new Date(Date.now() + input.expiresInDays * 86400_000) : null,
    namespaceId: input.namespaceId ?? null, adapterIds: input.adapterIds ?? null,
  }).returning({ id: apiTokens.id, expiresAt: apiTokens.expiresAt });
  logger.info({ userId: input.userId, prefix: token.prefix, scopes: input.scopes }, 'API token created');
  return { id: row!.id, token: token.secret, prefix: token.prefix, expiresAt: row!.expiresAt };
}

/** Lists a user's API tokens without their secrets, newest first, revoked ones included. */
export async function listApiTokens(db: Db, userId: string) {
  return db.select({
    id: apiTokens.id, name: apiTokens.name, prefix: apiTokens.prefix, scopes: apiTokens.scopes, expiresAt: apiTokens.expiresAt, lastUsedAt: apiTokens.lastUsedAt,
    revokedAt: apiTokens.revokedAt, createdAt: apiTokens.createdAt, namespace: namespaces.name, adapterIds: apiTokens.adapterIds,
  }).from(apiTokens).leftJoin(namespaces, eq(namespaces.id, apiTokens.namespaceId))
    .where(eq(apiTokens.userId, userId)).orderBy(desc(apiTokens.createdAt));
}

/** Lists the API tokens limited to a team namespace, with their holders; a team's admins manage these. */
export async function listNamespaceTokens(db: Db, namespaceId: string) {
  return db.select({
    id: apiTokens.id, name: apiTokens.name, prefix: apiTokens.prefix, scopes: apiTokens.scopes, holder: users.email, expiresAt: apiTokens.expiresAt,
    lastUsedAt: apiTokens.lastUsedAt, revokedAt: apiTokens.revokedAt, createdAt: apiTokens.createdAt,
  }).from(apiTokens).innerJoin(users, eq(users.id, apiTokens.userId))
    .where(eq(apiTokens.namespaceId, namespaceId)).orderBy(desc(apiTokens.createdAt));
}

/** Revokes an API token limited to the namespace, whoever holds it. */
export async function revokeNamespaceToken(db: Db, input: { namespaceId: string; id: string }) {
  const [revoked] = await db.update(apiTokens).set({ revokedAt: sql`now()` })
    .where(and(eq(apiTokens.id, input.id), eq(apiTokens.namespaceId, input.namespaceId), isNull(apiTokens.revokedAt)))
    .returning({ id: apiTokens.id, prefix: apiTokens.prefix });
  if (!revoked) throw notFound(`active API token ${input.id} limited to this namespace`);
  logger.info({ namespaceId: input.namespaceId, prefix: revoked.prefix }, 'API token revoked by a namespace admin');
  return revoked;
}

/** Revokes one of the user's API tokens; it stops working on the next request. */
export async function revokeApiToken(db: Db, input: { userId: string; id: string }) {
  const [revoked] = await db.update(apiTokens).set({ revokedAt: sql`now()` })
    .where(and(eq(apiTokens.id, input.id), eq(apiTokens.userId, input.userId), isNull(apiTokens.revokedAt)))
    .returning({ id: apiTokens.id, prefix: apiTokens.prefix });
  if (!revoked) throw notFound(`active API token ${input.id} of yours`);
  logger.info({ userId: input.userId, prefix: revoked.prefix }, 'API token revoked');
  return revoked;
}

export async function createRunnerToken(db: Db, input: { userId: string; name: string }) {
  const token = newTokenSecret(RUNNER_TOKEN_PREFIX);
  await db.insert(runnerTokens).values({ name: input.name, prefix: token.prefix, tokenHash: token.hash, createdBy: input.userId });
  logger.info({ userId: input.userId, prefix: token.prefix }, 'runner token created');
  return { token: token.secret, prefix: token.prefix };
}

/**
 * Resolves a namespace the caller may publish into or transfer adapters to: one where it has
 * at least the admin role. A namespace where it has no role is NOT_FOUND, so its existence is
 * not revealed; a lower role is FORBIDDEN.
 */
export async function namespaceForPublishing(caller: Caller, name: string): Promise<string> {
  const [found] = await caller.db.select({ id: namespaces.id }).from(namespaces).where(eq(namespaces.name, name)).limit(1);
  const role = found ? await roleIn(caller, found.id) : null;
  if (!found || !role) throw notFound(`namespace ${name} you may publish to`);
  if (!roleAtLeast(role, 'admin')) throw new TRPCError({ code: 'FORBIDDEN', message: `your role in ${name} is ${role}; publishing there needs admin or owner` });
  return found.id;
}
