import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { announce, describeFolder, putFiles } from '../../cli/upload';
import { finalizeUpload, MIN_PART_SIZE, partRange } from '../../lib/upload-protocol';
import type { Client } from '../../lib/trpc-client';
import { appUrl, testEnv, TINY_BASE_ID } from '../setup/env';
import { newUser, runCli, writeAdapterFolder } from '../setup/helpers';

type User = Awaited<ReturnType<typeof newUser>>;

async function publishFolder(client: Client, dir: string, name: string, extra: { label?: string; changelog?: string; description?: string; domain?: string } = {}) {
  const files = await describeFolder(dir);
  const begun = await client.adapters.beginUpload.mutate({ files: files.map(announce) });
  await putFiles(files, begun.files);
  return finalizeUpload(() => client.adapters.publish.mutate({ uploadId: begun.uploadId, name, baseModelId: TINY_BASE_ID, ...extra }));
}

async function sql<T = Record<string, unknown>>(text: string, values: unknown[] = []): Promise<T[]> {
  const pool = new pg.Pool({ connectionString: testEnv.DATABASE_URL });
  try {
    return (await pool.query(text, values)).rows as T[];
  } finally {
    await pool.end();
  }
}

describe('multipart uploads', () => {
  let user: User;
  beforeAll(async () => {
    user = await newUser('parts');
  });

  it('resumes an interrupted multipart upload', async () => {
    const dir = await writeAdapterFolder();
    // 2.5 parts of the smallest size S3 accepts: three parts, the last one short.
    const notes = randomBytes(Math.floor(MIN_PART_SIZE * 2.5));
    await fs.writeFile(path.join(dir, 'training_notes.txt'), notes);
    const files = await describeFolder(dir);
    const big = files.find((f) => f.path === 'training_notes.txt')!;
    Object.assign(big, { partSize: MIN_PART_SIZE, parts: [0, 1, 2].map((i) => createHash('sha256').update(notes.subarray(...partRange(notes.length, MIN_PART_SIZE, i + 1))).digest('hex')) });

    const begun = await user.client.adapters.beginUpload.mutate({ files: files.map(announce) });
    const target = begun.files.find((f) => f.path === 'training_notes.txt')!;
    expect(target.parts.map((p) => p.partNumber)).toEqual([1, 2, 3]);

    // A part whose bytes differ from its announced sha256 is refused by the store itself.
    const wrong = await fetch(target.parts[1]!.url, { method: 'PUT', body: notes.subarray(0, MIN_PART_SIZE) });
    expect(wrong.status).toBe(400);

    // Send the small files and only the first part, then "lose the connection".
    await putFiles(files.filter((f) => f !== big), begun.files.filter((f) => f.path !== big.path));
    await putFiles([big], [{ ...target, parts: target.parts.slice(0, 1) }]);
    await expect(user.client.adapters.publish.mutate({ uploadId: begun.uploadId, name: 'big-notes', baseModelId: TINY_BASE_ID }))
      .rejects.toThrow(/training_notes\.txt: part 2 of 3 was not uploaded; resume the upload/);

    const resumed = await user.client.uploads.resume.mutate({ uploadId: begun.uploadId });
    const again = resumed.files.find((f) => f.path === 'training_notes.txt')!;
    expect(again.done).toBe(false);
    expect(again.parts.map((p) => p.partNumber)).toEqual([2, 3]);
    expect(resumed.files.filter((f) => f.path !== big.path).every((f) => f.done)).toBe(true);
    await putFiles([big], [again]);

    const published = await finalizeUpload(() => user.client.adapters.publish.mutate({ uploadId: begun.uploadId, name: 'big-notes', baseModelId: TINY_BASE_ID }));
    expect(published.version).toBe(1);
    const download = await user.client.adapters.downloadUrl.mutate({ namespace: user.namespace, name: 'big-notes', path: 'training_notes.txt' });
    const bytes = Buffer.from(await (await fetch(download.url)).arrayBuffer());
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(big.sha256);
  });

  it('rejects inconsistent part layouts', async () => {
    await expect(user.client.adapters.beginUpload.mutate({ files: [{ path: 'a.txt', size: MIN_PART_SIZE * 3, sha256: 'a'.repeat(64), partSize: MIN_PART_SIZE, parts: ['b'.repeat(64)] }] }))
      .rejects.toThrow(/makes 3 parts of 5242880 bytes, but 1 part hashes were sent/);
    await expect(user.client.adapters.beginUpload.mutate({ files: [{ path: 'a.txt', size: 100 * 1024 * 1024, sha256: 'a'.repeat(64) }] }))
      .rejects.toThrow(/are uploaded in parts: send partSize and the sha256 of each part/);
  });

  it('aborts the multipart upload of an expired session', async () => {
    const body = randomBytes(MIN_PART_SIZE + 10);
    const parts = [1, 2].map((n) => createHash('sha256').update(body.subarray(...partRange(body.length, MIN_PART_SIZE, n))).digest('hex'));
    const sha256 = createHash('sha256').update(body).digest('hex');
    const begun = await user.client.adapters.beginUpload.mutate({ files: [{ path: 'left.txt', size: body.length, sha256, partSize: MIN_PART_SIZE, parts }] });
    expect((await fetch(begun.files[0]!.parts[0]!.url, { method: 'PUT', body: body.subarray(0, MIN_PART_SIZE) })).ok).toBe(true);

    await sql("update upload_sessions set expires_at = now() - interval '1 second' where id = $1", [begun.uploadId]);
    await user.client.adapters.beginUpload.mutate({ files: [{ path: 'next.txt', size: 3, sha256: 'd'.repeat(64) }] });
    expect(await sql('select 1 from upload_sessions where id = $1', [begun.uploadId])).toEqual([]);
    // The part URL of an aborted multipart upload no longer accepts bytes.
    const late = await fetch(begun.files[0]!.parts[1]!.url, { method: 'PUT', body: body.subarray(MIN_PART_SIZE) });
    expect(late.ok).toBe(false);
  });

  it('resumes an interrupted CLI publish without sending finished parts again', async () => {
    const dir = await writeAdapterFolder();
    const first = runCli(['publish', dir, '--name', 'cli-resume', '--base', TINY_BASE_ID, '--label', 'not-semver'], user.token);
    expect(first.status).toBe(1);
    expect(first.stderr).toMatch(/version label "not-semver" is not a semantic version/);
    // The failed attempt left its upload id; the next run resumes it and publishes.
    expect(JSON.parse(await fs.readFile(path.join(dir, '.adapters-upload.json'), 'utf8')).uploadId).toMatch(/^[0-9a-f-]{36}$/);
    const second = runCli(['publish', dir, '--name', 'cli-resume', '--base', TINY_BASE_ID, '--label', '1.0.0', '--changelog', 'first release'], user.token);
    expect(second.stderr).toMatch(/resuming upload/);
    expect(second.status).toBe(0);
    await expect(fs.access(path.join(dir, '.adapters-upload.json'))).rejects.toThrow();
    const page = await user.client.adapters.get.query({ namespace: user.namespace, name: 'cli-resume' });
    expect(page.version).toMatchObject({ label: '1.0.0', changelog: 'first release' });
  });
});

describe('model cards', () => {
  let user: User;
  beforeAll(async () => {
    user = await newUser('cards');
  });

  it('reads the front matter into the version and the listing', async () => {
    const tag = `radiology-${user.namespace}`;
    const readme = `---\nbase_model: HuggingFaceTB/tiny-llama\nlibrary_name: peft\nlicense: apache-2.0\ntags: [oncology, ${tag}]\ndatasets: [pubmed_qa]\nlanguage: en\ndomain: medical\n---\n# Tumour board helper\n\nAnswers staging questions about glioblastoma.\n`;
    const dir = await writeAdapterFolder({ readme });
    const published = await publishFolder(user.client, dir, 'tumour-board');
    expect(published.warnings).toEqual([]);
    const page = await user.client.adapters.get.query({ namespace: user.namespace, name: 'tumour-board' });
    expect(page.domain).toBe('medical');
    expect(page.version.cardMetadata).toMatchObject({ license: 'apache-2.0', tags: ['oncology', tag], datasets: ['pubmed_qa'], language: ['en'] });

    // Words of the card body, and tags, find the adapter.
    const byBody = await user.client.adapters.search.query({ query: 'glioblastoma' });
    expect(byBody.items.map((a) => a.name)).toContain('tumour-board');
    const byTag = await user.client.adapters.search.query({ tag, license: 'apache-2.0' });
    expect(byTag.items.map((a) => `${a.namespace}/${a.name}`)).toEqual([`${user.namespace}/tumour-board`]);
  });

  it('rejects malformed front matter and publishes nothing', async () => {
    const dir = await writeAdapterFolder({ readme: '---\nlicense: mit\ntags: [a, b\n---\n# Broken\n' });
    await expect(publishFolder(user.client, dir, 'broken-card')).rejects.toThrow(/README\.md front matter is not valid YAML/);
    await expect(user.client.adapters.get.query({ namespace: user.namespace, name: 'broken-card' })).rejects.toThrow(/not found/);
  });

  it('warns about a card naming another base model or library', async () => {
    const dir = await writeAdapterFolder({ readme: '---\nbase_model: meta-llama/Llama-3.1-8B\nlibrary_name: transformers\n---\n' });
    const published = await publishFolder(user.client, dir, 'mislabelled');
    expect(published.warnings.join('\n')).toMatch(/names base_model meta-llama\/Llama-3\.1-8B; the adapter was checked against tiny-llama/);
    expect(published.warnings.join('\n')).toMatch(/set library_name: peft/);
  });
});

describe('search', () => {
  let user: User;
  const word = `zq${Date.now().toString(36)}`;
  beforeAll(async () => {
    user = await newUser('search');
    for (const [index, rank] of [4, 4, 8, 8, 8].entries()) {
      const dir = await writeAdapterFolder({ rank, readme: `---\nlicense: ${index % 2 ? 'mit' : 'apache-2.0'}\ntags: [${word}]\n---\nAdapter number ${index}.\n` });
      await publishFolder(user.client, dir, `${word}-adapter-${index}`, { description: `Search test ${index}` });
    }
  });

  it('walks every page with a cursor, each adapter once', async () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let pages = 0; pages < 10; pages += 1) {
      const page = await user.client.adapters.search.query({ tag: word, sort: 'recent', limit: 2, cursor });
      seen.push(...page.items.map((a) => a.name));
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    expect(seen).toHaveLength(5);
    expect(new Set(seen).size).toBe(5);
    // Newest first.
    expect(seen[0]).toBe(`${word}-adapter-4`);
  });

  it('filters by rank and license and counts facets without their own filter', async () => {
    const rank8 = await user.client.adapters.search.query({ tag: word, rank: 8 });
    expect(rank8.items.map((a) => a.name).sort()).toEqual([2, 3, 4].map((i) => `${word}-adapter-${i}`));
    expect(rank8.items.every((a) => a.rank === 8 && a.sizeBytes! > 0 && a.peftType === 'LORA' && a.taskType === 'CAUSAL_LM')).toBe(true);

    const facets = await user.client.adapters.facets.query({ tag: word, rank: 8 });
    expect(facets.rank).toEqual([{ value: '8', count: 3 }, { value: '4', count: 2 }]);
    expect(facets.license).toEqual([{ value: 'apache-2.0', count: 2 }, { value: 'mit', count: 1 }]);
  });

  it('finds a name with a typo by trigram similarity', async () => {
    const found = await user.client.adapters.search.query({ query: `${word}-adaptr-3` });
    expect(found.items[0]?.name).toBe(`${word}-adapter-3`);
  });

  it('sorts by downloads and rejects a forged cursor', async () => {
    await user.client.adapters.downloadUrl.mutate({ namespace: user.namespace, name: `${word}-adapter-1`, path: 'README.md' });
    const top = await user.client.adapters.search.query({ tag: word, sort: 'downloads', limit: 1 });
    expect(top.items[0]!.name).toBe(`${word}-adapter-1`);
    await expect(user.client.adapters.search.query({ tag: word, cursor: 'bm90LWEtY3Vyc29y' })).rejects.toThrow(/cursor "bm90LWEtY3Vyc29y" is not valid/);
  });

  it('keeps the filters in the browse page URL', async () => {
    const response = await fetch(`${appUrl}/?tag=${word}&rank=8&sort=downloads`);
    expect(response.status).toBe(200);
  });
});

describe('delete, restore, rename and transfer', () => {
  let owner: User;
  let other: User;
  beforeAll(async () => {
    owner = await newUser('owner');
    other = await newUser('other');
  });

  it('soft-deletes, restores, and purges after the retention period', async () => {
    const dir = await writeAdapterFolder({ rank: 2 });
    // A unique file, so purging it can delete its object.
    await fs.writeFile(path.join(dir, 'unique.txt'), `only here ${Date.now()} ${Math.random()}`);
    await publishFolder(owner.client, dir, 'short-lived');

    await expect(other.client.adapters.delete.mutate({ namespace: owner.namespace, name: 'short-lived' })).rejects.toThrow(new RegExp(`you have no role in namespace ${owner.namespace}`));
    const deleted = await owner.client.adapters.delete.mutate({ namespace: owner.namespace, name: 'short-lived' });
    expect(new Date(deleted.restorableUntil).getTime()).toBeGreaterThan(Date.now() + 29 * 86_400_000);
    await expect(owner.client.adapters.get.query({ namespace: owner.namespace, name: 'short-lived' })).rejects.toThrow(/not found/);
    expect((await owner.client.adapters.search.query({ query: 'short-lived' })).items.filter((a) => a.namespace === owner.namespace)).toEqual([]);

    await owner.client.adapters.restore.mutate({ namespace: owner.namespace, name: 'short-lived' });
    const page = await owner.client.adapters.get.query({ namespace: owner.namespace, name: 'short-lived' });
    const unique = page.files.find((f) => f.path === 'unique.txt')!;

    await owner.client.adapters.delete.mutate({ namespace: owner.namespace, name: 'short-lived' });
    await sql("update adapters set deleted_at = now() - interval '31 days' where id = $1", [page.adapterId]);
    // Any new adapter upload purges adapters past their retention first.
    await owner.client.adapters.beginUpload.mutate({ files: [{ path: 'x.txt', size: 1, sha256: 'c'.repeat(64) }] });
    expect(await sql('select 1 from blobs where sha256 = $1', [unique.sha256])).toEqual([]);
    expect(await sql('select 1 from adapter_files f join adapter_versions v on v.id = f.version_id where v.adapter_id = $1', [page.adapterId])).toEqual([]);
    await expect(owner.client.adapters.restore.mutate({ namespace: owner.namespace, name: 'short-lived' })).rejects.toThrow(/that can still be restored not found/);
  });

  it('redirects old names after a rename', async () => {
    await publishFolder(owner.client, await writeAdapterFolder(), 'first-name');
    const renamed = runCli(['rename', `${owner.namespace}/first-name`, 'second-name'], owner.token);
    expect(renamed.status).toBe(0);
    expect(renamed.stdout).toMatch(new RegExp(`renamed to ${owner.namespace}/second-name; ${owner.namespace}/first-name redirects to it`));

    const viaOld = await other.client.adapters.get.query({ namespace: owner.namespace, name: 'first-name' });
    expect(viaOld).toMatchObject({ name: 'second-name', redirectedFrom: `${owner.namespace}/first-name` });
    const pageResponse = await fetch(`${appUrl}/${owner.namespace}/first-name`, { redirect: 'manual' });
    expect(pageResponse.status).toBe(308);
    expect(pageResponse.headers.get('location')).toMatch(new RegExp(`/${owner.namespace}/second-name$`));
    const hub = await fetch(`${appUrl}/api/models/${owner.namespace}/first-name`);
    expect(hub.status).toBe(200);

    // Publishing under the old name makes a new adapter there; the redirect ends.
    await publishFolder(owner.client, await writeAdapterFolder(), 'first-name');
    const fresh = await owner.client.adapters.get.query({ namespace: owner.namespace, name: 'first-name' });
    expect(fresh).toMatchObject({ name: 'first-name', redirectedFrom: null });
    expect(fresh.adapterId).not.toBe(viaOld.adapterId);
  });

  it('rejects foreign namespaces and taken names', async () => {
    await publishFolder(owner.client, await writeAdapterFolder(), 'keep-me');
    await expect(owner.client.adapters.rename.mutate({ namespace: owner.namespace, name: 'keep-me', newName: 'stolen', newNamespace: other.namespace }))
      .rejects.toThrow(new RegExp(`namespace ${other.namespace} you may publish to not found`));
    await expect(owner.client.adapters.rename.mutate({ namespace: owner.namespace, name: 'keep-me', newName: 'second-name' }))
      .rejects.toThrow(/second-name already exists; choose another name/);
    expect((await owner.client.adapters.get.query({ namespace: owner.namespace, name: 'keep-me' })).name).toBe('keep-me');
  });
});
