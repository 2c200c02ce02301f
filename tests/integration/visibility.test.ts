import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { and, eq, isNotNull } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, fileSource, followJob, uploadFiles, type Client, type JobUpdate } from '@adapters/client';
import { adapterVersions, evalResults, users } from '@/drizzle/schema';
import { finalizeUpload } from '@/lib/upload-protocol';
import { createCaller } from '@/server/api/root';
import { createContext } from '@/server/api/trpc';
import { getDb } from '@/server/db';
import { appUrl, TINY_BASE_ID } from '../setup/env';
import { newUser, startRunner, writeAdapterFolder, type RunnerProcess } from '../setup/helpers';

// Private adapters on every read path, through the real app over HTTP.

const run = randomUUID().slice(0, 6);
// A word only this file's adapters carry, so search counts see no other file's adapters.
const WORD = `zq${run}vis`;

type User = Awaited<ReturnType<typeof newUser>>;

async function publish(client: Client, namespace: string, name: string, visibility?: 'public' | 'private') {
  const dir = await writeAdapterFolder();
  const sources = await Promise.all((await fs.readdir(dir)).map((file) => fileSource(path.join(dir, file), file)));
  const { uploadId } = await uploadFiles(client, sources, { purpose: 'adapter' });
  return finalizeUpload(() => client.adapters.publish.mutate({
    uploadId, namespace, name, baseModelId: TINY_BASE_ID, description: `test adapter ${WORD}`, domain: 'medical', visibility,
  }));
}

async function userId(email: string): Promise<string> {
  const [user] = await (await getDb()).select({ id: users.id }).from(users).where(eq(users.email, email));
  return user!.id;
}

/** Creates an API token of `user` through its web session, optionally limited to one namespace. */
async function token(user: User, scopes: ('read' | 'write' | 'evaluate')[], namespace?: string): Promise<string> {
  const session = createCaller(await createContext({ sessionUserId: await userId(user.email) }));
  return (await session.auth.createToken({ name: `visibility ${scopes.join(',')}`, scopes, namespace })).token;
}

function codeOf(promise: Promise<unknown>): Promise<string> {
  return promise.then(() => 'allowed', (error: { data?: { code?: string }; message?: string }) => error.data?.code ?? String(error.message));
}

describe('private adapters', () => {
  let owner: User;
  let viewer: User;
  let outsider: User;
  let team: string;
  let anonymous: Client;
  let teamToken: string;
  let otherNamespaceToken: string;
  let noReadToken: string;
  let runner: RunnerProcess | undefined;

  beforeAll(async () => {
    owner = await newUser('vis-owner');
    viewer = await newUser('vis-viewer');
    outsider = await newUser('vis-outsider');
    team = `${owner.namespace}-lab`;
    await owner.client.teams.create.mutate({ name: team });
    await viewer.client.teams.accept.mutate({ token: (await owner.client.teams.invite.mutate({ team, role: 'viewer' })).token });
    await publish(owner.client, team, 'secret', 'private');
    await publish(owner.client, team, 'open');
    anonymous = createClient({ url: appUrl });
    teamToken = await token(owner, ['read'], team);
    otherNamespaceToken = await token(owner, ['read'], owner.namespace);
    noReadToken = await token(owner, ['write'], team);
  });

  afterAll(async () => {
    await runner?.stop();
  });

  it('get answers by caller', async () => {
    const ref = { namespace: team, name: 'secret' };
    const callers: [string, Client, string][] = [
      ['anonymous', anonymous, 'NOT_FOUND'],
      ['outsider', outsider.client, 'NOT_FOUND'],
      ['token of another namespace', createClient({ url: appUrl, token: otherNamespaceToken }), 'NOT_FOUND'],
      ['token without read', createClient({ url: appUrl, token: noReadToken }), 'NOT_FOUND'],
      ['viewer', viewer.client, 'allowed'],
      ['token of the namespace', createClient({ url: appUrl, token: teamToken }), 'allowed'],
      ['owner', owner.client, 'allowed'],
    ];
    for (const [name, client, expected] of callers) {
      expect(await codeOf(client.adapters.get.query(ref)), name).toBe(expected);
      expect(await codeOf(client.adapters.downloadUrl.mutate({ ...ref, path: 'adapter_config.json' })), `${name} downloadUrl`).toBe(expected);
    }
    const page = await viewer.client.adapters.get.query(ref);
    expect(page.visibility).toBe('private');
    expect(page.canManage).toBe(false);
    expect((await owner.client.adapters.get.query(ref)).canManage).toBe(true);
  });

  it('search and facets hide it', async () => {
    const names = async (client: Client) => (await client.adapters.search.query({ query: WORD })).items.map((item) => `${item.namespace}/${item.name}`).sort();
    expect(await names(anonymous)).toEqual([`${team}/open`]);
    expect(await names(outsider.client)).toEqual([`${team}/open`]);
    expect(await names(createClient({ url: appUrl, token: otherNamespaceToken }))).toEqual([`${team}/open`]);
    expect(await names(viewer.client)).toEqual([`${team}/open`, `${team}/secret`]);
    expect(await names(createClient({ url: appUrl, token: teamToken }))).toEqual([`${team}/open`, `${team}/secret`]);

    const medical = async (client: Client) => (await client.adapters.facets.query({ query: WORD })).domain.find((entry) => entry.value === 'medical')?.count;
    expect(await medical(anonymous)).toBe(1);
    expect(await medical(outsider.client)).toBe(1);
    expect(await medical(viewer.client)).toBe(2);
  });

  it('HTTP routes answer 404 to outsiders', async () => {
    const routes = [
      `/api/adapters/${team}/secret/versions/1/archive`,
      `/api/models/${team}/secret`,
      `/api/models/${team}/secret/revision/main`,
      `/api/models/${team}/secret/tree/main`,
      `/${team}/secret/resolve/main/adapter_config.json`,
    ];
    for (const route of routes) {
      // HEAD keeps the archive from counting a download; the other routes serve GET.
      const head = { method: route.endsWith('/archive') ? 'HEAD' : 'GET', redirect: 'manual' as const };
      expect((await fetch(`${appUrl}${route}`, head)).status, `anonymous ${route}`).toBe(404);
      expect((await fetch(`${appUrl}${route}`, { ...head, headers: { authorization: `Bearer ${otherNamespaceToken}` } })).status, `other namespace ${route}`).toBe(404);
      expect((await fetch(`${appUrl}${route}`, { ...head, headers: { authorization: `Bearer ${teamToken}` } })).status, `team token ${route}`).toBeLessThan(400);
    }
    const info = await (await fetch(`${appUrl}/api/models/${team}/secret`, { headers: { authorization: `Bearer ${teamToken}` } })).json() as { private: boolean };
    expect(info.private).toBe(true);
    expect((await fetch(`${appUrl}/${team}/secret`)).status).toBe(404);
  });

  it('management by outsiders is NOT_FOUND', async () => {
    const ref = { namespace: team, name: 'secret' };
    expect(await codeOf(outsider.client.adapters.setVisibility.mutate({ ...ref, visibility: 'public' }))).toBe('NOT_FOUND');
    expect(await codeOf(outsider.client.adapters.like.mutate({ ...ref, liked: true }))).toBe('NOT_FOUND');
    expect(await codeOf(outsider.client.evals.request.mutate({ ...ref, taskId: 'pubmedqa' }))).toBe('NOT_FOUND');
    expect(await codeOf(viewer.client.adapters.setVisibility.mutate({ ...ref, visibility: 'public' }))).toBe('FORBIDDEN');
  });

  it('setVisibility toggles and audits', async () => {
    const ref = { namespace: team, name: 'open' };
    expect(await owner.client.adapters.setVisibility.mutate({ ...ref, visibility: 'private' })).toMatchObject({ previous: 'public', visibility: 'private' });
    expect(await codeOf(anonymous.adapters.get.query(ref))).toBe('NOT_FOUND');
    await owner.client.adapters.setVisibility.mutate({ ...ref, visibility: 'public' });
    expect(await codeOf(anonymous.adapters.get.query(ref))).toBe('allowed');

    const entries = (await owner.client.teams.auditLog.query({ namespace: team })).entries.slice(0, 2);
    expect(entries.map((entry) => [entry.action, entry.target])).toEqual([['adapter.visibility', `${team}/open`], ['adapter.visibility', `${team}/open`]]);
    expect(entries[0]!.details).toEqual({ from: 'private', to: 'public' });
  });

  it('lineage hides the data set', async () => {
    // A fine-tune's lineage, written onto the public adapter's version as completeJob writes it.
    const page = await owner.client.adapters.get.query({ namespace: team, name: 'open' });
    const dataset = { name: `${team}/private-data`, version: 1, sha256: 'a'.repeat(64), lineage: null };
    await (await getDb()).update(adapterVersions).set({ lineage: { jobId: randomUUID(), dataset, baseModelId: TINY_BASE_ID } }).where(eq(adapterVersions.id, page.version.id));

    expect((await anonymous.adapters.get.query({ namespace: team, name: 'open' })).version.lineage).toMatchObject({ dataset: { private: true }, baseModelId: TINY_BASE_ID });
    expect((await outsider.client.adapters.get.query({ namespace: team, name: 'open' })).version.lineage?.dataset).toEqual({ private: true });
    expect((await viewer.client.adapters.get.query({ namespace: team, name: 'open' })).version.lineage?.dataset).toEqual(dataset);
  });

  it('old name redirects only for members', async () => {
    await owner.client.adapters.rename.mutate({ namespace: team, name: 'secret', newName: 'secret-renamed' });
    expect(await codeOf(anonymous.adapters.get.query({ namespace: team, name: 'secret' }))).toBe('NOT_FOUND');
    expect(await codeOf(outsider.client.adapters.get.query({ namespace: team, name: 'secret' }))).toBe('NOT_FOUND');
    expect((await viewer.client.adapters.get.query({ namespace: team, name: 'secret' })).redirectedFrom).toBe(`${team}/secret`);
    await owner.client.adapters.rename.mutate({ namespace: team, name: 'secret-renamed', newName: 'secret' });
  });

  it('evaluation stays in its namespace', async () => {
    runner = await startRunner(`visibility-${run}`);
    const { jobId } = await viewer.client.evals.request.mutate({ namespace: team, name: 'secret', taskId: 'pubmedqa', limit: 2 });
    expect(await codeOf(outsider.client.finetune.get.query({ jobId }))).toBe('NOT_FOUND');

    const updates: JobUpdate[] = [];
    const job = await followJob(viewer.client, jobId, { intervalMs: 500, onEvent: (update) => updates.push(update) });
    expect(job.state).toBe('succeeded');
    expect(job.namespace).toBe(team);
    expect(updates[updates.length - 1]).toBeDefined();
    expect(updates.filter((update) => update.kind === 'state').map((update) => (update as { state: string }).state).at(-1)).toBe('succeeded');
    expect(updates.some((update) => update.kind === 'event')).toBe(true);

    const entries = async (client: Client) => (await client.evals.leaderboard.query({ taskId: 'pubmedqa' })).entries.map((entry) => entry.adapter);
    expect(await entries(viewer.client)).toContain(`${team}/secret`);
    expect(await entries(anonymous)).not.toContain(`${team}/secret`);
    expect(await entries(outsider.client)).not.toContain(`${team}/secret`);
    expect((await viewer.client.adapters.get.query({ namespace: team, name: 'secret' })).scores.length).toBeGreaterThan(0);

    // The run page, the comparison and the badge hide the private version's scores the same way.
    const [result] = await (await getDb()).select({ id: evalResults.id }).from(evalResults)
      .where(and(eq(evalResults.jobId, jobId), isNotNull(evalResults.adapterVersionId)));
    expect((await viewer.client.evals.run.query({ id: result!.id })).adapter).toBe(`${team}/secret`);
    expect(await codeOf(outsider.client.evals.run.query({ id: result!.id }))).toBe('NOT_FOUND');
    expect(await codeOf(anonymous.evals.run.query({ id: result!.id }))).toBe('NOT_FOUND');
    const pair = [{ namespace: team, name: 'secret', version: 1 }, { namespace: team, name: 'open', version: 1 }];
    expect(await codeOf(outsider.client.evals.compare.query({ versions: pair }))).toBe('NOT_FOUND');
    // Badges: an outsider is stopped at the adapter, a member only at the unknown suite.
    const score = { namespace: team, name: 'secret', version: 1, suiteId: 'no-such-suite' } as const;
    await expect(outsider.client.evals.versionScore.query(score)).rejects.toThrow(`adapter ${team}/secret not found`);
    await expect(viewer.client.evals.versionScore.query(score)).rejects.toThrow('evaluation suite "no-such-suite" not found');
    expect((await fetch(`${appUrl}/api/badge/${team}/secret/1/no-such-suite.svg`)).status).toBe(404);
  });
});
