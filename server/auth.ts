import { createHash, randomBytes } from 'node:crypto';
import { hash, verify } from '@node-rs/argon2';
import { and, eq, gt, isNull, or, sql } from 'drizzle-orm';
import type { AuthOptions } from 'next-auth';
import CredentialsProvider from 'next-auth/providers/credentials';
import GitHubProvider, { type GithubProfile } from 'next-auth/providers/github';
import { apiTokens, namespaces, runnerTokens, users } from '@/drizzle/schema';
import { getDb, type Db } from './db';
import { getEnv, type Env } from './env';
import { logger } from './logger';
import { linkOAuthAccount } from './services/accounts';

export interface SessionUser {
  id: string;
  email: string;
  namespaceId: string;
  namespace: string;
  isAdmin: boolean;
}

export const API_TOKEN_PREFIX = 'amk_';
export const RUNNER_TOKEN_PREFIX = 'amr_';

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** Makes a token secret; the caller stores only its hash and shows the secret once. */
export function newTokenSecret(prefix: string): { secret: string; prefix: string; hash: string } {
  const secret = prefix + randomBytes(24).toString('base64url');
  return { secret, prefix: secret.slice(0, prefix.length + 6), hash: hashToken(secret) };
}

export async function hashPassword(password: string): Promise<string> {
  return hash(password);
}

export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  try {
    return await verify(passwordHash, password);
  } catch {
    return false;
  }
}

async function loadUser(db: Db, where: ReturnType<typeof eq>): Promise<SessionUser | null> {
  const [row] = await db
    .select({ id: users.id, email: users.email, namespaceId: users.namespaceId, namespace: namespaces.name, isAdmin: users.isAdmin })
    .from(users)
    .innerJoin(namespaces, eq(namespaces.id, users.namespaceId))
    .where(where)
    .limit(1);
  return row ?? null;
}

export async function userByCredentials(db: Db, email: string, password: string): Promise<SessionUser | null> {
  const [row] = await db.select({ id: users.id, passwordHash: users.passwordHash }).from(users).where(eq(users.email, email.toLowerCase())).limit(1);
  if (!row?.passwordHash || !(await verifyPassword(row.passwordHash, password))) return null;
  return loadUser(db, eq(users.id, row.id));
}

export async function userById(db: Db, id: string): Promise<SessionUser | null> {
  return loadUser(db, eq(users.id, id));
}

export interface ApiTokenGrant {
  user: SessionUser;
  tokenId: string;
  scopes: string[];
  // Limits: the token acts only in this namespace, or only on these adapters; null means none.
  namespaceId: string | null;
  adapterIds: string[] | null;
}

/** Resolves a personal API token to its user, scopes and limits; null when unknown, revoked or expired. Records its last use. */
export async function userByApiToken(db: Db, token: string): Promise<ApiTokenGrant | null> {
  const [row] = await db
    .update(apiTokens)
    .set({ lastUsedAt: sql`now()` })
    .where(and(eq(apiTokens.tokenHash, hashToken(token)), isNull(apiTokens.revokedAt), or(isNull(apiTokens.expiresAt), gt(apiTokens.expiresAt, sql`now()`))))
    .returning({ id: apiTokens.id, userId: apiTokens.userId, scopes: apiTokens.scopes, namespaceId: apiTokens.namespaceId, adapterIds: apiTokens.adapterIds });
  if (!row) return null;
  const user = await userById(db, row.userId);
  return user ? { user, tokenId: row.id, scopes: row.scopes, namespaceId: row.namespaceId, adapterIds: row.adapterIds } : null;
}

export async function runnerTokenId(db: Db, token: string): Promise<string | null> {
  const [row] = await db
    .select({ id: runnerTokens.id })
    .from(runnerTokens)
    .where(and(eq(runnerTokens.tokenHash, hashToken(token)), isNull(runnerTokens.revokedAt)))
    .limit(1);
  return row?.id ?? null;
}

/**
 * Builds the next-auth configuration from `env` (the validated environment by default).
 * Sessions are JWTs in a cookie, because next-auth 4 supports the credentials provider only
 * with JWT sessions. GitHub sign-in is offered when GITHUB_ID and GITHUB_SECRET are set. Its
 * identities are linked to users in `oauth_accounts`, and the JWT carries the user id either way.
 */
export function authOptions(env: Env = getEnv()): AuthOptions {
  const github = env.GITHUB_ID && env.GITHUB_SECRET
    ? [GitHubProvider({ clientId: env.GITHUB_ID, clientSecret: env.GITHUB_SECRET })]
    : [];
  return {
    secret: env.NEXTAUTH_SECRET,
    // Secure, __Secure- prefixed session cookies whenever the public URL is https. Production
    // requires https except on loopback hosts (server/env.ts), where browsers would drop them.
    useSecureCookies: env.NEXTAUTH_URL?.startsWith('https://') ?? false,
    session: { strategy: 'jwt', maxAge: 30 * 24 * 3600 },
    pages: { signIn: '/signin' },
    providers: [
      CredentialsProvider({
        name: 'Email and password',
        credentials: { email: { label: 'Email', type: 'email' }, password: { label: 'Password', type: 'password' } },
        async authorize(credentials) {
          if (!credentials?.email || !credentials.password) return null;
          const user = await userByCredentials(await getDb(), credentials.email, credentials.password);
          return user ? { id: user.id, email: user.email, name: user.namespace } : null;
        },
      }),
      ...github,
    ],
    callbacks: {
      async jwt({ token, user, account, profile }) {
        if (account?.provider === 'github') {
          // The provider's user is GitHub's; the session names ours, created on first sign-in.
          const login = (profile as GithubProfile | undefined)?.login ?? account.providerAccountId;
          const linked = await linkOAuthAccount(await getDb(), { provider: 'github', providerAccountId: account.providerAccountId, login, email: user?.email ?? null });
          logger.info({ userId: linked.userId, provider: 'github', created: linked.created }, 'signed in through OAuth');
          token.sub = linked.userId;
        } else if (user) {
          token.sub = user.id;
        }
        return token;
      },
      session({ session, token }) {
        return { ...session, userId: token.sub };
      },
    },
  };
}
