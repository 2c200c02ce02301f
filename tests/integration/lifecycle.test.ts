import { beforeAll, describe, expect, it } from 'vitest';
import { TINY_BASE_ID } from '../setup/env';
import { newUser, runCli, writeAdapterFolder } from '../setup/helpers';

describe('adapter lifecycle', () => {
  let owner: Awaited<ReturnType<typeof newUser>>;
  let stranger: Awaited<ReturnType<typeof newUser>>;

  beforeAll(async () => {
    owner = await newUser('life');
    stranger = await newUser('stranger');
    for (let i = 0; i < 2; i++) {
      const dir = await writeAdapterFolder({ rank: 4 });
      expect(runCli(['publish', dir, '--name', 'aging', '--base', TINY_BASE_ID, '--domain', 'finance'], owner.token).status).toBe(0);
    }
    const dir = await writeAdapterFolder({ rank: 4 });
    expect(runCli(['publish', dir, '--name', 'successor', '--base', TINY_BASE_ID], owner.token).status).toBe(0);
  });

  it('yanks a version out of latest but keeps it downloadable with a warning', async () => {
    const yanked = runCli(['yank', `${owner.namespace}/aging@2`, '--reason', 'trained on the wrong split'], owner.token);
    expect(yanked.status).toBe(0);

    const latest = await owner.client.adapters.get.query({ namespace: owner.namespace, name: 'aging' });
    expect(latest.version.version).toBe(1);
    expect(latest.versions.find((v) => v.version === 2)?.yanked).toBe(true);

    const download = await owner.client.adapters.downloadUrl.mutate({ namespace: owner.namespace, name: 'aging', version: 2, path: 'adapter_config.json' });
    expect(download.warning).toBe(`version 2 of ${owner.namespace}/aging was yanked: trained on the wrong split`);

    const search = await owner.client.adapters.search.query({ query: 'aging' });
    expect(search.items.find((a) => a.name === 'aging')?.latestVersion).toBe(1);
  });

  it('hides an adapter whose every version is yanked from listings', async () => {
    expect(runCli(['yank', `${owner.namespace}/aging@1`, '--reason', 'superseded'], owner.token).status).toBe(0);
    const search = await owner.client.adapters.search.query({ query: 'aging' });
    expect(search.items.find((a) => a.name === 'aging' && a.namespace === owner.namespace)).toBeUndefined();
    await expect(owner.client.adapters.get.query({ namespace: owner.namespace, name: 'aging' })).rejects.toThrow(/that is not yanked not found/);
  });

  it('deprecates with a pointer to the replacement', async () => {
    const result = runCli(['deprecate', `${owner.namespace}/successor`, '--message', 'merged into aging', '--replacement', `${owner.namespace}/missing`], owner.token);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/adapter .*\/missing not found/);

    await owner.client.adapters.deprecate.mutate({ namespace: owner.namespace, name: 'aging', message: 'use the successor', replacedBy: `${owner.namespace}/successor` });
    const page = await owner.client.adapters.get.query({ namespace: owner.namespace, name: 'aging', version: 1 });
    expect(page.deprecation).toEqual({ message: 'use the successor', replacedBy: `${owner.namespace}/successor` });
  });

  it('answers FORBIDDEN when another namespace tries to yank', async () => {
    await expect(stranger.client.adapters.yank.mutate({ namespace: owner.namespace, name: 'successor', version: 1, reason: 'vandalism' }))
      .rejects.toThrow(new RegExp(`you have no role in namespace ${owner.namespace}`));
    const page = await owner.client.adapters.get.query({ namespace: owner.namespace, name: 'successor' });
    expect(page.version.yanked).toBeNull();
  });
});
