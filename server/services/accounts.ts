import { count, eq } from 'drizzle-orm';
import { apiTokens, namespaces, runnerTokens, users } from '@/drizzle/schema';
import { API_TOKEN_PREFIX, hashPassword, newTokenSecret, RUNNER_TOKEN_PREFIX } from '../auth';
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

export async function createApiToken(db: Db, input: { userId: string; name: string; scopes: (typeof tokenScopes)[number][]; expiresInDays: number | null }) {
  if (input.scopes.length === 0) throw badRequest(`choose at least one scope: ${tokenScopes.join(', ')}`);
  const token = newTokenSecret(API_TOKEN_PREFIX);
  await db.insert(apiTokens).values({
    userId: input.userId, name: input.name, prefix: token.prefix, tokenHash: token.hash, scopes: input.scopes,
    expiresAt: input.expiresInDays ? new Date(Date.now() + input.expiresInDays * 86400_000) : null,
  });
  logger.info({ userId: input.userId, prefix: token.prefix, scopes: input.scopes }, 'API token created');
  return { token: token.secret, prefix: token.prefix };
}

export async function createRunnerToken(db: Db, input: { userId: string; name: string }) {
  const token = newTokenSecret(RUNNER_TOKEN_PREFIX);
  await db.insert(runnerTokens).values({ name: input.name, prefix: token.prefix, tokenHash: token.hash, createdBy: input.userId });
  logger.info({ userId: input.userId, prefix: token.prefix }, 'runner token created');
  return { token: token.secret, prefix: token.prefix };
}

/**
 * Resolves a namespace a user may publish into or transfer adapters to: their own, or any
 * namespace for an administrator. Another namespace is NOT_FOUND, so its existence is not revealed.
 */
export async function namespaceForPublishing(db: Db, user: { namespaceId: string; isAdmin: boolean }, name: string): Promise<string> {
  const [found] = await db.select({ id: namespaces.id }).from(namespaces).where(eq(namespaces.name, name)).limit(1);
  if (!found || (found.id !== user.namespaceId && !user.isAdmin)) throw notFound(`namespace ${name} you may publish to`);
  return found.id;
}
