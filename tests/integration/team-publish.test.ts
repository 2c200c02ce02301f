import { eq } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { users } from '@/drizzle/schema';
import { createCaller } from '@/server/api/root';
import { createContext } from '@/server/api/trpc';
import { getDb } from '@/server/db';
import { announce, describeFolder, putFiles } from '../../cli/upload';
import { createClient, type Client } from '../../lib/trpc-client';
import { appUrl, TINY_BASE_ID } from '../setup/env';
import { newUser, runCli, writeAdapterFolder } from '../setup/helpers';

// Publishing into a team namespace over HTTP, with real uploads to S3.

async function publish(client: Client, namespace: string, name: string) {
  const files = await describeFolder(await writeAdapterFolder());
  const begun = await client.adapters.beginUpload.mutate({ files: files.map(announce) });
  await putFiles(files, begun.files);
  return client.adapters.publish.mutate({ uploadId: begun.uploadId, namespace, name, baseModelId: TINY_BASE_ID });
}

describe('team publishing', () => {
  it('follows team roles', async () => {
    const owner = await newUser('pub-owner');
    const admin = await newUser('pub-admin');
    const member = await newUser('pub-member');
    const team = `${owner.namespace}-lab`;
    await owner.client.teams.create.mutate({ name: team });
    await admin.client.teams.accept.mutate({ token: (await owner.client.teams.invite.mutate({ team, role: 'admin' })).token });
    await member.client.teams.accept.mutate({ token: (await owner.client.teams.invite.mutate({ team, role: 'member' })).token });

    await expect(publish(member.client, team, 'notes')).rejects.toThrow(new RegExp(`your role in ${team} is member; this needs admin`));
    const published = await publish(admin.client, team, 'notes');
    expect(published).toMatchObject({ namespace: team, name: 'notes', version: 1 });
    expect((await member.client.adapters.get.query({ namespace: team, name: 'notes' })).version.version).toBe(1);

    await expect(member.client.adapters.delete.mutate({ namespace: team, name: 'notes' })).rejects.toThrow(/this needs admin/);
    await admin.client.adapters.delete.mutate({ namespace: team, name: 'notes' });
    await owner.client.adapters.restore.mutate({ namespace: team, name: 'notes' });

    await admin.client.adapters.yank.mutate({ namespace: team, name: 'notes', version: 1, reason: 'wrong rank' });
    await admin.client.adapters.rename.mutate({ namespace: team, name: 'notes', newName: 'notes-v2' });

    const entries = (await owner.client.teams.auditLog.query({ namespace: team })).entries.slice(0, 5).map((entry) => [entry.action, entry.actor, entry.target]);
    expect(entries).toEqual([
      ['adapter.rename', admin.email, `${team}/notes`],
      ['adapter.yank', admin.email, `${team}/notes`],
      ['adapter.restore', owner.email, `${team}/notes`],
      ['adapter.delete', admin.email, `${team}/notes`],
      ['adapter.publish', admin.email, `${team}/notes`],
    ]);
    await expect(member.client.teams.auditLog.query({ namespace: team })).rejects.toThrow(/this needs admin/);
  });

  it('limits a token to one adapter', async () => {
    const owner = await newUser('ci-owner');
    const team = `${owner.namespace}-ci`;
    await owner.client.teams.create.mutate({ name: team });
    await publish(owner.client, team, 'pinned');

    const limitedToken = await createLimitedToken(owner.email, team);
    const ci = createClient({ url: appUrl, token: limitedToken });
    expect(await publish(ci, team, 'pinned')).toMatchObject({ version: 2 });
    await expect(publish(ci, team, 'another')).rejects.toThrow(/not allowed to act on adapter/);

    // The CLI publishes into the team with --namespace.
    const cli = runCli(['publish', await writeAdapterFolder(), '--name', 'pinned', '--base', TINY_BASE_ID, '--namespace', team, '--json'], limitedToken);
    expect(cli.status, cli.stderr).toBe(0);
    expect(JSON.parse(cli.stdout)).toMatchObject({ namespace: team, name: 'pinned', version: 3 });
  });
});

/**
 * Creates a token limited to `team/pinned` for the user, as the tokens page does from a
 * browser session (an API token would need the admin scope to create tokens).
 */
async function createLimitedToken(email: string, team: string): Promise<string> {
  const [user] = await (await getDb()).select({ id: users.id }).from(users).where(eq(users.email, email));
  const session = createCaller(await createContext({ sessionUserId: user!.id }));
  return (await session.auth.createToken({ name: 'ci', scopes: ['read', 'write'], adapters: [`${team}/pinned`] })).token;
}
