import { randomUUID } from 'node:crypto';
import { TRPCError } from '@trpc/server';
import { eq } from 'drizzle-orm';
import { beforeAll, describe, expect, it } from 'vitest';
import { datasets, jobs, namespaces, teamInvitations } from '@/drizzle/schema';
import { createCaller } from '@/server/api/root';
import { createContext } from '@/server/api/trpc';
import { getDb, type Db } from '@/server/db';
import { signUp } from '@/server/services/accounts';
import { TINY_BASE_ID } from '../setup/env';

// Team flows through the real router on the test database, acting as signed-in users.

const run = randomUUID().slice(0, 6);
let db: Db;

async function account(name: string) {
  const email = `${name}-${run}@example.com`;
  const { userId } = await signUp(db, { email, password: 'password-123', namespace: `${name}-${run}` });
  return { email, userId, api: createCaller(await createContext({ sessionUserId: userId })) };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  return promise.then(() => 'OK', (error: unknown) => (error instanceof TRPCError ? error.code : String(error)));
}

beforeAll(async () => {
  db = await getDb();
});

describe('teams', () => {
  it('invitation links work once', async () => {
    const owner = await account('inviter');
    const first = await account('first');
    const second = await account('second');
    const team = `links-${run}`;
    await owner.api.teams.create({ name: team });

    const invitation = await owner.api.teams.invite({ team, role: 'member', expiresInHours: 1 });
    expect(invitation.token).toMatch(/^ami_/);
    const [stored] = await db.select().from(teamInvitations).where(eq(teamInvitations.id, invitation.id));
    expect(stored!.tokenHash).not.toContain(invitation.token);

    expect(await first.api.teams.accept({ token: invitation.token })).toEqual({ namespace: team, role: 'member' });
    await expect(second.api.teams.accept({ token: invitation.token })).rejects.toThrow(/invitation .*not found/);
    expect(await codeOf(second.api.teams.get({ team }))).toBe('NOT_FOUND');
    const members = (await owner.api.teams.get({ team })).members.map((member) => [member.email, member.role]);
    expect(members).toEqual([[owner.email, 'owner'], [first.email, 'member']]);
  });

  it('expired and revoked links fail', async () => {
    const owner = await account('expirer');
    const joiner = await account('late');
    const team = `expiry-${run}`;
    await owner.api.teams.create({ name: team });

    const expired = await owner.api.teams.invite({ team, role: 'viewer', expiresInHours: 1 });
    await db.update(teamInvitations).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(teamInvitations.id, expired.id));
    await expect(joiner.api.teams.accept({ token: expired.token })).rejects.toThrow(/expired/);

    const revoked = await owner.api.teams.invite({ team, role: 'viewer', expiresInHours: 1 });
    await owner.api.teams.revokeInvitation({ team, id: revoked.id });
    await expect(joiner.api.teams.accept({ token: revoked.token })).rejects.toThrow(/not found/);
    expect((await owner.api.teams.get({ team })).invitations).toEqual([]);
  });

  it('team keeps an owner', async () => {
    const owner = await account('founder');
    const admin = await account('deputy');
    const team = `owners-${run}`;
    await owner.api.teams.create({ name: team });
    await admin.api.teams.accept({ token: (await owner.api.teams.invite({ team, role: 'admin', expiresInHours: 1 })).token });

    await expect(owner.api.teams.leave({ team })).rejects.toThrow(/only owner .*transfer ownership/);
    await expect(owner.api.teams.setRole({ team, email: owner.email, role: 'admin' })).rejects.toThrow(/only owner/);
    await expect(admin.api.teams.removeMember({ team, email: owner.email })).rejects.toThrow(/only an owner may remove an owner/);
    await expect(admin.api.teams.invite({ team, role: 'owner', expiresInHours: 1 })).rejects.toThrow(/only an owner may invite another owner/);
    expect(await codeOf(admin.api.teams.transferOwnership({ team, email: admin.email }))).toBe('FORBIDDEN');

    await owner.api.teams.transferOwnership({ team, email: admin.email });
    const roles = Object.fromEntries((await admin.api.teams.get({ team })).members.map((member) => [member.email, member.role]));
    expect(roles).toEqual({ [owner.email]: 'admin', [admin.email]: 'owner' });
    await owner.api.teams.leave({ team });
    expect(await codeOf(owner.api.teams.get({ team }))).toBe('NOT_FOUND');
    expect(await admin.api.teams.mine()).toEqual([expect.objectContaining({ namespace: team, role: 'owner' })]);
  });

  it('roles govern team data sets and jobs', async () => {
    const owner = await account('lead');
    const viewer = await account('watcher');
    const member = await account('worker');
    const outsider = await account('stranger');
    const team = `data-${run}`;
    await owner.api.teams.create({ name: team });
    await viewer.api.teams.accept({ token: (await owner.api.teams.invite({ team, role: 'viewer', expiresInHours: 1 })).token });
    await member.api.teams.accept({ token: (await owner.api.teams.invite({ team, role: 'member', expiresInHours: 1 })).token });

    const [namespace] = await db.select({ id: namespaces.id }).from(namespaces).where(eq(namespaces.name, team));
    await db.insert(datasets).values({ namespaceId: namespace!.id, name: 'private-notes' });
    const [job] = await db.insert(jobs).values({ kind: 'finetune', state: 'queued', namespaceId: namespace!.id, baseModelId: TINY_BASE_ID, params: {}, maxAttempts: 1 }).returning({ id: jobs.id });

    expect((await viewer.api.finetune.list({ namespace: team })).map((row) => row.id)).toEqual([job!.id]);
    expect(await codeOf(viewer.api.finetune.cancel({ jobId: job!.id }))).toBe('FORBIDDEN');
    expect(await codeOf(outsider.api.finetune.get({ jobId: job!.id }))).toBe('NOT_FOUND');
    expect(await codeOf(outsider.api.datasets.list({ namespace: team }))).toBe('NOT_FOUND');
    expect(await member.api.finetune.cancel({ jobId: job!.id })).toEqual({ state: 'cancelled' });

    // A removed member loses access at once.
    await owner.api.teams.removeMember({ team, email: member.email });
    expect(await codeOf(member.api.finetune.get({ jobId: job!.id }))).toBe('NOT_FOUND');
  });

  it('admins revoke team tokens', async () => {
    const owner = await account('keeper');
    const member = await account('holder');
    const team = `keys-${run}`;
    await owner.api.teams.create({ name: team });
    await member.api.teams.accept({ token: (await owner.api.teams.invite({ team, role: 'member', expiresInHours: 1 })).token });
    const teamToken = await member.api.auth.createToken({ name: 'team ci', scopes: ['read'], namespace: team });
    const personal = await member.api.auth.createToken({ name: 'personal', scopes: ['read'] });

    const listed = await owner.api.teams.tokens({ team });
    expect(listed.map((token) => [token.prefix, token.holder])).toEqual([[teamToken.prefix, member.email]]);
    expect(await codeOf(member.api.teams.tokens({ team }))).toBe('FORBIDDEN');
    expect(await codeOf(owner.api.teams.revokeToken({ team, id: personal.id }))).toBe('NOT_FOUND');

    await owner.api.teams.revokeToken({ team, id: teamToken.id });
    await expect(createContext({ authorization: `Bearer ${teamToken.token}` })).rejects.toThrow(/revoked/);
    const actions = (await owner.api.teams.auditLog({ namespace: team })).entries.map((entry) => [entry.action, entry.target]);
    expect(actions.slice(0, 2)).toEqual([['token.revoke', teamToken.prefix], ['token.create', teamToken.prefix]]);
  });

  it('audit log records team actions', async () => {
    const owner = await account('auditor');
    const member = await account('audited');
    const outsider = await account('snoop');
    const team = `audit-${run}`;
    await owner.api.teams.create({ name: team });
    await member.api.teams.accept({ token: (await owner.api.teams.invite({ team, role: 'member', expiresInHours: 1 })).token });
    await owner.api.teams.setRole({ team, email: member.email, role: 'viewer' });
    await owner.api.teams.removeMember({ team, email: member.email });

    const { entries } = await owner.api.teams.auditLog({ namespace: team });
    expect(entries.map((entry) => [entry.action, entry.actor])).toEqual([
      ['member.remove', owner.email], ['member.role', owner.email], ['member.join', member.email], ['invitation.create', owner.email], ['team.create', owner.email],
    ]);
    expect(entries[0]!.target).toBe(member.email);
    expect(entries[1]!.details).toEqual({ from: 'member', to: 'viewer' });
    expect(JSON.stringify(entries)).not.toMatch(/ami_/);

    await member.api.teams.accept({ token: (await owner.api.teams.invite({ team, role: 'member', expiresInHours: 1 })).token });
    expect(await codeOf(member.api.teams.auditLog({ namespace: team }))).toBe('FORBIDDEN');
    expect(await codeOf(outsider.api.teams.auditLog({ namespace: team }))).toBe('NOT_FOUND');
  });
});
