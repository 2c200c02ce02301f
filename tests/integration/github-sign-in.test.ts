import { randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { namespaces, oauthAccounts, users } from '@/drizzle/schema';
import { authOptions } from '@/server/auth';
import { getDb } from '@/server/db';
import { parseEnv } from '@/server/env';
import { linkOAuthAccount, namespaceFromLogin, signUp } from '@/server/services/accounts';
import { appSettings, appUrl } from '../setup/env';

// GitHub sign-in offline: which providers the configuration enables, and account linking
// called directly (the OAuth round trip itself needs github.com).

// The test app's settings without GitHub ones; each case adds its own.
const SECRET = appSettings(appUrl);

describe('GitHub sign-in', () => {
  it('provider list follows the settings', async () => {
    const ids = (env: Record<string, string>) => authOptions(parseEnv({ ...SECRET, ...env })).providers.map((provider) => provider.id);
    expect(ids({})).toEqual(['credentials']);
    expect(ids({ GITHUB_ID: '', GITHUB_SECRET: '' })).toEqual(['credentials']);
    expect(ids({ GITHUB_ID: 'Iv1.test', GITHUB_SECRET: 'test-client-secret' })).toEqual(['credentials', 'github']);
    expect(() => parseEnv({ ...SECRET, GITHUB_ID: 'Iv1.test' })).toThrow(/GITHUB_SECRET: set both GITHUB_ID and GITHUB_SECRET/);

    // The test app runs without the settings, so it offers no GitHub button.
    const offered = await (await fetch(`${appUrl}/api/auth/providers`)).json() as Record<string, unknown>;
    expect(Object.keys(offered)).toEqual(['credentials']);
    expect(await (await fetch(`${appUrl}/signin`)).text()).not.toContain('Sign in with GitHub');
  });

  it('namespace names derive from logins', () => {
    expect(namespaceFromLogin('Octo-Cat')).toBe('octo-cat');
    expect(namespaceFromLogin('a')).toBe('a-user');
    expect(namespaceFromLogin('x'.repeat(39), '-2')).toBe(`${'x'.repeat(37)}-2`);
  });

  it('first sign-in creates, second reuses', async () => {
    const db = await getDb();
    const run = randomUUID().slice(0, 6);
    const login = `Gh-${run}`;
    const accountId = String(Date.now());

    const first = await linkOAuthAccount(db, { provider: 'github', providerAccountId: accountId, login, email: `gh-${run}@example.com` });
    expect(first).toMatchObject({ created: true, namespace: `gh-${run}` });
    const [user] = await db.select({ email: users.email, passwordHash: users.passwordHash }).from(users).where(eq(users.id, first.userId));
    expect(user).toEqual({ email: `gh-${run}@example.com`, passwordHash: null });

    // A renamed GitHub login still finds the same user through the account id.
    const second = await linkOAuthAccount(db, { provider: 'github', providerAccountId: accountId, login: `renamed-${run}`, email: null });
    expect(second).toEqual({ userId: first.userId, namespace: `gh-${run}`, created: false });
    expect(await db.select({ id: oauthAccounts.id }).from(oauthAccounts).where(eq(oauthAccounts.userId, first.userId))).toHaveLength(1);
  });

  it('taken names and emails are not reused', async () => {
    const db = await getDb();
    const run = randomUUID().slice(0, 6);
    const existing = await signUp(db, { email: `taken-${run}@example.com`, password: 'password-123', namespace: `taken-${run}` });

    const linked = await linkOAuthAccount(db, { provider: 'github', providerAccountId: `${Date.now()}1`, login: `taken-${run}`, email: `taken-${run}@example.com` });
    expect(linked.created).toBe(true);
    expect(linked.userId).not.toBe(existing.userId);
    expect(linked.namespace).toBe(`taken-${run}-2`);
    const [user] = await db.select({ email: users.email }).from(users).where(eq(users.id, linked.userId));
    expect(user!.email).toMatch(/^github-\d+@users\.invalid$/);
    expect(await db.select({ id: namespaces.id }).from(namespaces).where(eq(namespaces.name, `taken-${run}-2`))).toHaveLength(1);
  });
});
