import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileSource, uploadFiles } from '@adapters/client';
import { finalizeUpload } from '@/lib/upload-protocol';
import { appUrl, TINY_BASE_ID } from '../setup/env';
import { SignedInBrowser } from '../setup/browser';
import { newUser, writeAdapterFolder } from '../setup/helpers';

// A private team adapter in Chromium: a member opens its page, an outsider gets 404, and an
// admin's toggle makes it public.
describe('private adapter page in Chromium', () => {
  const browser = new SignedInBrowser();
  const signedIn = (user: { email: string; password: string; namespace: string }) => browser.signedIn(user);

  beforeAll(() => browser.launch());
  afterAll(() => browser.close());

  it('shows it to members only', async () => {
    const owner = await newUser('page-private-owner');
    const member = await newUser('page-private-member');
    const outsider = await newUser('page-private-outsider');
    const team = `${owner.namespace}-lab`;
    await owner.client.teams.create.mutate({ name: team });
    await member.client.teams.accept.mutate({ token: (await owner.client.teams.invite.mutate({ team, role: 'member' })).token });
    const dir = await writeAdapterFolder();
    const sources = await Promise.all((await fs.readdir(dir)).map((file) => fileSource(path.join(dir, file), file)));
    const { uploadId } = await uploadFiles(owner.client, sources, { purpose: 'adapter' });
    await finalizeUpload(() => owner.client.adapters.publish.mutate({ uploadId, namespace: team, name: 'private-notes', baseModelId: TINY_BASE_ID, visibility: 'private' }));
    const url = `${appUrl}/${team}/private-notes`;

    const outsiderPage = await signedIn(outsider);
    const denied = await outsiderPage.goto(url);
    expect(denied?.status()).toBe(404);
    expect(await outsiderPage.getByRole('heading', { name: `${team}/private-notes` }).count()).toBe(0);

    const memberPage = await signedIn(member);
    await memberPage.goto(url);
    await memberPage.getByRole('heading', { name: `${team}/private-notes` }).waitFor();
    await memberPage.getByTestId('private-badge').waitFor();
    // Members below admin get no toggle.
    expect(await memberPage.getByTestId('visibility-toggle').count()).toBe(0);

    const ownerPage = await signedIn(owner);
    await ownerPage.goto(url);
    await ownerPage.getByRole('button', { name: 'Make public' }).click();
    await ownerPage.getByRole('button', { name: 'Make private' }).waitFor();

    const allowed = await outsiderPage.goto(url);
    expect(allowed?.status()).toBe(200);
    await outsiderPage.getByRole('heading', { name: `${team}/private-notes` }).waitFor();
  });
});
