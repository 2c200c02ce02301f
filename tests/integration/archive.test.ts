import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { ARCHIVE_WARNING_HEADER, archivePath, decodeHeaderText } from '../../lib/adapter-archive';
import { deleteObject } from '../../server/storage';
import { appUrl, testEnv, TINY_BASE_ID } from '../setup/env';
import { newUser, runPython, waitFor, writeAdapterFolder } from '../setup/helpers';

// Lists an archive with Python's tarfile: each member's name, size and sha256.
const READ_TAR = `
import hashlib, json, sys, tarfile
members = []
with tarfile.open(sys.argv[1], "r:") as archive:
    for member in archive:
        digest = hashlib.sha256()
        source = archive.extractfile(member)
        for chunk in iter(lambda: source.read(1 << 20), b""):
            digest.update(chunk)
        members.append({"path": member.name, "size": member.size, "sha256": digest.hexdigest(), "regular": member.isreg()})
print(json.dumps(sorted(members, key=lambda m: m["path"])))
`;

type User = Awaited<ReturnType<typeof newUser>>;

function archiveUrl(namespace: string, name: string, version: number | 'latest'): string {
  return `${appUrl}${archivePath(namespace, name, version)}`;
}

async function saveArchive(response: Response): Promise<string> {
  const file = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'archive-')), 'download.tar');
  await fs.writeFile(file, Buffer.from(await response.arrayBuffer()));
  return file;
}

function readArchive(file: string): { path: string; size: number; sha256: string; regular: boolean }[] {
  const result = runPython(READ_TAR, [file]);
  expect(result.stderr).toBe('');
  return JSON.parse(result.stdout);
}

/**
 * Runs the CLI without blocking the event loop. runCli (spawnSync) blocks it for seconds,
 * so the fetch pool misses the app closing idle keep-alive sockets (after 5 s), and the
 * next tRPC call fails with "other side closed".
 */
async function runCliAsync(args: string[], token: string): Promise<{ status: number; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args, '--url', appUrl, '--token', token], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const [code] = (await once(child, 'close')) as [number | null];
  return { status: code ?? -1, stdout, stderr };
}

async function publish(user: User, name: string, dir: string): Promise<void> {
  const result = await runCliAsync(['publish', dir, '--name', name, '--base', TINY_BASE_ID], user.token);
  expect(result.status, result.stderr).toBe(0);
}

async function versionDownloads(user: User, name: string, version: number): Promise<{ version: number; adapter: number }> {
  const page = await user.client.adapters.get.query({ namespace: user.namespace, name, version });
  return { version: page.versions.find((v) => v.version === version)!.downloads, adapter: page.downloads };
}

describe('version archive download', () => {
  let owner: User;
  const name = 'archive-adapter';
  const yankReason = 'weights saved in the wrong dtype — use v2 (100% fixed)';
  // 24 MiB: above the CLI's 16 MiB part size, so this file is stored under its multipart
  // upload key, and far more than socket buffers hold, so a client can stop mid-stream.
  const large = randomBytes(24 * 1024 * 1024);

  beforeAll(async () => {
    owner = await newUser('archive');
    await publish(owner, name, await writeAdapterFolder({ readme: `# first ${randomUUID()}` }));
    const second = await writeAdapterFolder({ readme: `# second ${randomUUID()}` });
    await fs.writeFile(path.join(second, 'training_log.dat'), large);
    await publish(owner, name, second);
    await owner.client.adapters.yank.mutate({ namespace: owner.namespace, name, version: 1, reason: yankReason });
  });

  it('streams the latest version as ustar', async () => {
    const response = await fetch(archiveUrl(owner.namespace, name, 'latest'));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/x-tar');
    expect(response.headers.get('content-disposition')).toBe(`attachment; filename="${owner.namespace}--${name}-v2.tar"`);
    expect(response.headers.get('x-adapter-version')).toBe('2');
    expect(response.headers.get(ARCHIVE_WARNING_HEADER)).toBeNull();
    const declared = Number(response.headers.get('content-length'));

    const file = await saveArchive(response);
    expect((await fs.stat(file)).size).toBe(declared);
    const page = await owner.client.adapters.get.query({ namespace: owner.namespace, name, version: 2 });
    // READ_TAR sorts by code point, as this comparison does.
    const expected = page.files.map((f) => ({ path: f.path, size: f.size, sha256: f.sha256, regular: true })).sort((a, b) => (a.path < b.path ? -1 : 1));
    const members = readArchive(file);
    expect(members.map((m) => m.path)).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors', 'training_log.dat']);
    expect(members).toEqual(expected);
  });

  it('serves a yanked version with a warning', async () => {
    const response = await fetch(archiveUrl(owner.namespace, name, 1));
    expect(response.status).toBe(200);
    expect(response.headers.get('x-adapter-version')).toBe('1');
    const warning = response.headers.get(ARCHIVE_WARNING_HEADER);
    expect(warning).not.toBeNull();
    expect(decodeHeaderText(warning!)).toBe(`version 1 of ${owner.namespace}/${name} was yanked: ${yankReason}`);

    const page = await owner.client.adapters.get.query({ namespace: owner.namespace, name, version: 1 });
    const members = readArchive(await saveArchive(response));
    expect(members.map((m) => m.sha256).sort()).toEqual(page.files.map((f) => f.sha256).sort());
  });

  it('rejects missing versions naming them', async () => {
    const missing = await fetch(archiveUrl(owner.namespace, name, 9));
    expect(missing.status).toBe(404);
    expect((await missing.json()).error).toBe(`version 9 of ${owner.namespace}/${name} not found`);

    const invalid = await fetch(`${appUrl}/api/adapters/${owner.namespace}/${name}/versions/v2/archive`);
    expect(invalid.status).toBe(400);
    expect((await invalid.json()).error).toMatch(/version "v2" is invalid; use a version number such as 3, or latest/);

    const unknown = await fetch(archiveUrl(owner.namespace, 'no-such-adapter', 'latest'));
    expect(unknown.status).toBe(404);
    expect((await unknown.json()).error).toMatch(/adapter .*\/no-such-adapter not found/);
  });

  it('rejects a version with a path too long for ustar', async () => {
    const long = 'long';
    const dir = await writeAdapterFolder({ readme: `# long ${randomUUID()}` });
    const fileName = `${'n'.repeat(120)}.json`;
    await fs.writeFile(path.join(dir, fileName), '{}');
    await publish(owner, long, dir);

    const response = await fetch(archiveUrl(owner.namespace, long, 1));
    expect(response.status).toBe(422);
    const { error } = await response.json();
    expect(error).toContain(`version 1 of ${owner.namespace}/${long} cannot be archived: tar member name "${fileName}" is 125 bytes`);
    expect(error).toContain('download its files one by one with `adapters pull` instead');
    // A request that sends no archive is not a download.
    expect(await versionDownloads(owner, long, 1)).toEqual({ version: 0, adapter: 0 });
  });

  it('counts one download per client and day', async () => {
    const counted = 'archive-count';
    await publish(owner, counted, await writeAdapterFolder({ readme: `# counted ${randomUUID()}` }));
    const [first, second] = [await newUser('archive-a'), await newUser('archive-b')];
    const get = async (user: User, method = 'GET') => {
      const response = await fetch(archiveUrl(owner.namespace, counted, 1), { method, headers: { Authorization: `Bearer ${user.token}` } });
      expect(response.status).toBe(200);
      await response.arrayBuffer();
    };
    expect(await versionDownloads(owner, counted, 1)).toEqual({ version: 0, adapter: 0 });

    await get(first);
    await get(first);
    expect(await versionDownloads(owner, counted, 1)).toEqual({ version: 1, adapter: 1 });

    // A single-file download by the same client on the same day is the same download.
    await first.client.adapters.downloadUrl.mutate({ namespace: owner.namespace, name: counted, version: 1, path: 'adapter_config.json' });
    expect(await versionDownloads(owner, counted, 1)).toEqual({ version: 1, adapter: 1 });

    await get(second);
    expect(await versionDownloads(owner, counted, 1)).toEqual({ version: 2, adapter: 2 });

    // HEAD reports the size without counting.
    await get(await newUser('archive-c'), 'HEAD');
    expect(await versionDownloads(owner, counted, 1)).toEqual({ version: 2, adapter: 2 });
  });

  it('answers HEAD with the GET length', async () => {
    const head = await fetch(archiveUrl(owner.namespace, name, 'latest'), { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get('content-length'))).toBeGreaterThan(large.length);
    const response = await fetch(archiveUrl(owner.namespace, name, 'latest'));
    expect((await response.arrayBuffer()).byteLength).toBe(Number(head.headers.get('content-length')));
  });

  it('sends uncompressed bytes to gzip clients', async () => {
    const response = await fetch(archiveUrl(owner.namespace, name, 1), { headers: { 'Accept-Encoding': 'gzip, deflate, br' } });
    expect(response.headers.get('content-encoding')).toBeNull();
    expect(response.headers.get('content-length')).not.toBeNull();
    await response.arrayBuffer();
  });

  it('stops reading S3 when the client disconnects', async () => {
    const abort = new AbortController();
    const response = await fetch(archiveUrl(owner.namespace, name, 'latest'), { signal: abort.signal });
    const size = Number(response.headers.get('content-length'));
    const reader = response.body!.getReader();
    const first = await reader.read();
    expect(first.done).toBe(false);
    abort.abort();

    const logged = await waitFor('the app to log the stopped archive download', async () => {
      const lines = (await fs.readFile('.test-data/app.log', 'utf8')).split('\n');
      return lines.map((line) => (line.startsWith('{') ? JSON.parse(line) : null))
        .find((entry) => entry?.msg === 'archive download stopped by the client' && entry.namespace === owner.namespace && entry.name === name);
    }, 30_000);
    expect(logged.size).toBe(size);
    expect(logged.sentBytes).toBeLessThan(size);

    // The app still serves the next request.
    expect((await fetch(archiveUrl(owner.namespace, name, 1), { method: 'HEAD' })).status).toBe(200);
  });

  it('cuts the body short when an object is missing', async () => {
    const broken = 'archive-broken';
    const dir = await writeAdapterFolder({ readme: `# broken ${randomUUID()}` });
    await publish(owner, broken, dir);
    const page = await owner.client.adapters.get.query({ namespace: owner.namespace, name: broken });
    const readme = page.files.find((f) => f.path === 'README.md')!;
    const pool = new pg.Pool({ connectionString: testEnv.DATABASE_URL });
    const { rows } = await pool.query('select s3_key from blobs where sha256 = $1', [readme.sha256]);
    await pool.end();
    await deleteObject(rows[0].s3_key);

    const response = await fetch(archiveUrl(owner.namespace, broken, 'latest'), { signal: AbortSignal.timeout(30_000) });
    expect(response.status).toBe(200);
    // The body ends before Content-Length, so the client sees an error rather than a short archive.
    await expect(response.arrayBuffer()).rejects.toThrow(/terminated|closed|aborted/i);
  });

  it('pulls an archive with the CLI', async () => {
    const file = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'cli-archive-')), 'v1.tar');
    const pulled = await runCliAsync(['pull', `${owner.namespace}/${name}@1`, '--archive', file], owner.token);
    expect(pulled.status).toBe(0);
    expect(pulled.stderr).toContain(`warning: version 1 of ${owner.namespace}/${name} was yanked: ${yankReason}`);
    expect(pulled.stdout).toContain(`pulled ${owner.namespace}/${name}@1 into ${file}`);
    expect(pulled.stdout).toMatch(/adapter_model\.safetensors \(\d+ bytes\)/);
    expect(readArchive(file).map((m) => m.path)).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors']);
    await expect(fs.stat(`${file}.partial`)).rejects.toThrow(/ENOENT/);

    const json = await runCliAsync(['pull', `${owner.namespace}/${name}`, '--archive', file, '--json'], owner.token);
    expect(json.status).toBe(0);
    const parsed = JSON.parse(json.stdout);
    expect(parsed.version).toBe(2);
    expect(parsed.members.map((m: { name: string }) => m.name)).toContain('training_log.dat');
    expect(parsed.bytes).toBe((await fs.stat(file)).size);

    const missing = await runCliAsync(['pull', `${owner.namespace}/${name}@9`, '--archive', file], owner.token);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain(`HTTP 404: version 9 of ${owner.namespace}/${name} not found`);

    const both = await runCliAsync(['pull', `${owner.namespace}/${name}`, '--archive', file, '--out', path.dirname(file)], owner.token);
    expect(both.status).toBe(1);
    expect(both.stderr).toContain('pass either --out DIR (file by file) or --archive FILE.tar, not both');
  });
});
