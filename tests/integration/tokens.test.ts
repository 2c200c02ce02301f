import { createHash, randomUUID } from 'node:crypto';
import { TRPCError } from '@trpc/server';
import { eq } from 'drizzle-orm';
import { beforeAll, describe, expect, it } from 'vitest';
import { adapters, apiTokens, namespaces, users } from '@/drizzle/schema';
import { authorize, type Rule } from '@/server/api/authz';
import { createCaller } from '@/server/api/root';
import { createContext } from '@/server/api/trpc';
import { getDb, type Db } from '@/server/db';
import { createApiToken, signUp } from '@/server/services/accounts';
import { TINY_BASE_ID } from '../setup/env';

// API tokens through the same createContext the HTTP endpoint uses, on the test database.

const run = randomUUID().slice(0, 6);
let db: Db;
let owner: { userId: string; namespace: string; api: ReturnType<typeof createCaller> };
const TEAM = `tokens-${run}`;

async function withToken(token: string) {
  return createCaller(await createContext({ authorization: `Bearer ${token}` }));
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  return promise.then(() => 'OK', (error: unknown) => (error instanceof TRPCError ? error.code : String(error)));
}

async function addAdapter(namespace: string, name: string): Promise<string> {
  const [row] = await db.select({ id: namespaces.id }).from(namespaces).where(eq(namespaces.name, namespace));
  const [adapter] = await db.insert(adapters).values({ namespaceId: row!.id, name, baseModelId: TINY_BASE_ID }).returning({ id: adapters.id });
  return adapter!.id;
}

const manageAdapter: Rule = { kind: 'namespace', scope: 'write', role: 'admin', target: { from: 'adapter', redirects: true } };

beforeAll(async () => {
  db = await getDb();
  const namespace = `holder-${run}`;
  const { userId } = await signUp(db, { email: `holder-${run}@example.com`, password: 'password-123', namespace });
  owner = { userId, namespace, api: createCaller(await createContext({ sessionUserId: userId })) };
  await owner.api.teams.create({ name: TEAM });
});

describe('API tokens', () => {
  it('stores the hash and a prefix', async () => {
    const created = await owner.api.auth.createToken({ name: 'ci', scopes: ['read'] });
    expect(created.token).toMatch(/^amk_[A-Za-z0-9_-]{32}$/);
    expect(created.token.startsWith(created.prefix)).toBe(true);
    const [row] = await db.select().from(apiTokens).where(eq(apiTokens.id, created.id));
    expect(row!.tokenHash).toBe(createHash('sha256').update(created.token).digest('hex'));
    expect(JSON.stringify(row)).not.toContain(created.token);

    const listed = (await owner.api.auth.tokens()).find((token) => token.id === created.id)!;
    expect(listed).toMatchObject({ name: 'ci', prefix: created.prefix, scopes: ['read'], lastUsedAt: null, revokedAt: null });
    expect(JSON.stringify(listed)).not.toContain(created.token);
    await (await withToken(created.token)).auth.me();
    expect((await owner.api.auth.tokens()).find((token) => token.id === created.id)!.lastUsedAt).not.toBeNull();
  });

  it('enforces scopes', async () => {
    const { token } = await owner.api.auth.createToken({ name: 'reader', scopes: ['read'] });
    const reader = await withToken(token);
    expect(await codeOf(reader.finetune.list())).toBe('OK');
    await expect(reader.teams.create({ name: `nope-${run}` })).rejects.toThrow(/lacks the "write" scope/);
    // Creating tokens needs the admin scope, which this token lacks.
    expect(await codeOf(reader.auth.createToken({ name: 'escalate', scopes: ['write'] }))).toBe('FORBIDDEN');
  });

  it('stops working when expired', async () => {
    const created = await owner.api.auth.createToken({ name: 'short', scopes: ['read'], expiresInDays: 1 });
    expect(new Date(created.expiresAt!).getTime()).toBeGreaterThan(Date.now() + 86_000_000);
    expect(await codeOf((await withToken(created.token)).auth.me())).toBe('OK');
    await db.update(apiTokens).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(apiTokens.id, created.id));
    await expect(createContext({ authorization: `Bearer ${created.token}` })).rejects.toThrow(/unknown, revoked or expired/);
  });

  it('stops working when revoked', async () => {
    const created = await owner.api.auth.createToken({ name: 'leaked', scopes: ['read'] });
    await owner.api.auth.revokeToken({ id: created.id });
    await expect(createContext({ authorization: `Bearer ${created.token}` })).rejects.toThrow(/unknown, revoked or expired/);
    expect((await owner.api.auth.tokens()).find((token) => token.id === created.id)!.revokedAt).not.toBeNull();
    expect(await codeOf(owner.api.auth.revokeToken({ id: created.id }))).toBe('NOT_FOUND');

    const stranger = await signUp(db, { email: `stranger-${run}@example.com`, password: 'password-123', namespace: `stranger-${run}` });
    const other = await owner.api.auth.createToken({ name: 'mine', scopes: ['read'] });
    const strangerApi = createCaller(await createContext({ sessionUserId: stranger.userId }));
    expect(await codeOf(strangerApi.auth.revokeToken({ id: other.id }))).toBe('NOT_FOUND');
  });

  it('keeps to its namespace', async () => {
    const { token } = await owner.api.auth.createToken({ name: 'team only', scopes: ['read', 'write'], namespace: TEAM });
    const limited = await withToken(token);
    expect(await codeOf(limited.finetune.list({ namespace: TEAM }))).toBe('OK');
    // The user's own namespace is out of reach: private things are hidden, public ones forbidden.
    expect(await codeOf(limited.finetune.list())).toBe('NOT_FOUND');
    await addAdapter(owner.namespace, 'personal');
    await expect(limited.adapters.delete({ namespace: owner.namespace, name: 'personal' })).rejects.toThrow(/no role in namespace/);
    await expect(owner.api.auth.createToken({ name: 'elsewhere', scopes: ['read'], namespace: `stranger-${run}` })).rejects.toThrow(/you belong to not found/);
  });

  it('limited admin token cannot administer', async () => {
    const [admin] = await db.select({ id: users.id, namespaceId: users.namespaceId }).from(users).where(eq(users.isAdmin, true)).limit(1);
    const { token } = await createApiToken(db, { userId: admin!.id, name: 'limited admin', scopes: ['read', 'admin'], expiresInDays: 1, namespaceId: admin!.namespaceId });
    const context = await createContext({ authorization: `Bearer ${token}` });
    await expect(authorize(context, { kind: 'admin' }, undefined)).rejects.toThrow(/administration needs a token without limits/);
  });

  it('keeps to its adapters', async () => {
    const allowedId = await addAdapter(TEAM, 'allowed');
    await addAdapter(TEAM, 'other');
    const { token } = await owner.api.auth.createToken({ name: 'one adapter', scopes: ['read', 'write'], adapters: [`${TEAM}/allowed`] });
    const context = await createContext({ authorization: `Bearer ${token}` });
    expect(await authorize(context, manageAdapter, { namespace: TEAM, name: 'allowed' })).toMatchObject({ adapterId: allowedId, role: 'owner' });
    await expect(authorize(context, manageAdapter, { namespace: TEAM, name: 'other' })).rejects.toThrow(/not allowed to act on adapter/);

    const limited = createCaller(context);
    await expect(limited.adapters.delete({ namespace: TEAM, name: 'other' })).rejects.toThrow(/not allowed to act on adapter/);
    await expect(limited.finetune.list({ namespace: TEAM })).rejects.toThrow(/limited to chosen adapters/);
    await expect(owner.api.auth.createToken({ name: 'missing', scopes: ['read'], adapters: [`${TEAM}/missing`] })).rejects.toThrow(/not found/);
  });
});
