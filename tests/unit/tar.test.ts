import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { archiveSize, BLOCK_SIZE, listTarMembers, memberHeader, paddingBytes, splitUstarName, TarError, tarStream, type TarSource } from '../../server/formats/tar';
import { runPython } from '../setup/helpers';

const MTIME = new Date('2024-05-06T07:08:09Z');

// Lists an archive with Python's tarfile, which checks every header checksum.
const READ_TAR = `
import hashlib, json, sys, tarfile
with tarfile.open(sys.argv[1], "r:") as archive:
    members = []
    for member in archive:
        entry = {"name": member.name, "size": member.size, "mtime": member.mtime, "mode": member.mode, "type": member.type.decode()}
        if sys.argv[2] == "data":
            entry["sha256"] = hashlib.sha256(archive.extractfile(member).read()).hexdigest()
        members.append(entry)
print(json.dumps(members))
`;

function source(name: string, data: Buffer): TarSource {
  return { name, size: data.length, mtime: MTIME, open: async () => Readable.from([data]) };
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const reader = stream.getReader();
  for (let next = await reader.read(); !next.done; next = await reader.read()) chunks.push(Buffer.from(next.value));
  return Buffer.concat(chunks);
}

async function writeTemp(bytes: Buffer): Promise<string> {
  const file = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'tar-test-')), 'test.tar');
  await fs.writeFile(file, bytes);
  return file;
}

function readWithPython(file: string, withData = true): { name: string; size: number; mtime: number; mode: number; type: string; sha256?: string }[] {
  const result = runPython(READ_TAR, [file, withData ? 'data' : 'headers']);
  expect(result.stderr).toBe('');
  return JSON.parse(result.stdout);
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

describe('ustar writer', () => {
  it('writes an archive Python and GNU tar read', async () => {
    const card = Buffer.from('# Ünïcode card\n');
    const files = [
      source('adapter_config.json', Buffer.from('{"r": 4}')),
      source('weights/adapter_model.safetensors', Buffer.alloc(3000, 7)),
      source('README.md', card),
    ];
    const bytes = await collect(tarStream(files));
    expect(bytes.length).toBe(archiveSize(files));
    const file = await writeTemp(bytes);

    const members = readWithPython(file);
    expect(members.map((m) => m.name)).toEqual(['adapter_config.json', 'weights/adapter_model.safetensors', 'README.md']);
    expect(members.map((m) => m.size)).toEqual([8, 3000, card.length]);
    expect(members[2]!.sha256).toBe(sha256(card));
    expect(members[1]!.sha256).toBe(sha256(Buffer.alloc(3000, 7)));
    expect(members.every((m) => m.type === '0' && m.mode === 0o644 && m.mtime === MTIME.getTime() / 1000)).toBe(true);

    const gnu = spawnSync('tar', ['-tvf', file], { encoding: 'utf8' });
    expect(gnu.stderr).toBe('');
    expect(gnu.status).toBe(0);
    expect(gnu.stdout.trim().split('\n').map((line) => line.split(/\s+/).pop())).toEqual(['adapter_config.json', 'weights/adapter_model.safetensors', 'README.md']);
  });

  it('stores a header checksum readers verify', async () => {
    const header = memberHeader({ name: 'a.txt', size: 5, mtime: MTIME });
    expect(header.length).toBe(BLOCK_SIZE);
    let sum = 0;
    for (const [index, byte] of header.entries()) sum += index >= 148 && index < 156 ? 0x20 : byte;
    expect(header.subarray(148, 156).toString('ascii')).toBe(`${sum.toString(8).padStart(6, '0')}\0 `);
    expect(header.subarray(257, 265).toString('ascii')).toBe('ustar\x0000');

    const bytes = await collect(tarStream([source('a.txt', Buffer.from('hello'))]));
    const corrupt = Buffer.from(bytes);
    corrupt[0] = 'b'.charCodeAt(0);
    const python = runPython(READ_TAR, [await writeTemp(corrupt), 'headers']);
    expect(python.status).not.toBe(0);
    expect(python.stderr).toMatch(/ReadError|checksum|invalid header/i);
    await expect(listTarMembers(async (offset, length) => corrupt.subarray(offset, offset + length))).rejects.toThrow(/checksum/);
  });

  it('splits long names into the prefix field', async () => {
    const folder = `${'f'.repeat(60)}/${'g'.repeat(60)}`;
    const long = `${folder}/${'n'.repeat(99)}`;
    const split = splitUstarName(long);
    expect(split.prefix.toString()).toBe(folder);
    expect(split.name.toString()).toBe('n'.repeat(99));

    const exactly100 = 'x'.repeat(100);
    expect(splitUstarName(exactly100)).toEqual({ prefix: Buffer.alloc(0), name: Buffer.from(exactly100) });

    const files = [source(long, Buffer.from('long')), source(exactly100, Buffer.from('hundred'))];
    const members = readWithPython(await writeTemp(await collect(tarStream(files))));
    expect(members.map((m) => m.name)).toEqual([long, exactly100]);
    expect(members[0]!.sha256).toBe(sha256(Buffer.from('long')));
  });

  it('rejects names that do not fit', () => {
    const cases = [
      'x'.repeat(101), // no "/" to split at
      `${'p'.repeat(156)}/name`, // prefix over 155 bytes
      `${'p'.repeat(10)}/${'n'.repeat(101)}`, // last segment over 100 bytes
      `${'a'.repeat(150)}/${'b'.repeat(100)}/c`, // 253 bytes, but no split fits both fields
      'é'.repeat(51), // 102 bytes in UTF-8
    ];
    for (const name of cases) {
      expect(() => splitUstarName(name), name).toThrow(TarError);
      expect(() => splitUstarName(name), name).toThrow(/does not fit a ustar header/);
    }
    expect(() => tarStream([source(cases[0]!, Buffer.from('x'))])).toThrow(`"${cases[0]}"`);
  });

  it('rejects names that are not relative paths', () => {
    for (const name of ['', '/etc/passwd', 'a/../b', './a', 'a//b', 'folder/', 'nul\0byte']) {
      expect(() => splitUstarName(name), JSON.stringify(name)).toThrow(/is invalid/);
    }
  });

  it('pads data to whole blocks with zeros', async () => {
    const sizes = [0, 1, 511, 512, 513, 1025];
    const files = sizes.map((size, i) => source(`file-${i}`, Buffer.alloc(size, 0xab)));
    const bytes = await collect(tarStream(files));
    expect(bytes.length).toBe(archiveSize(files));

    let offset = 0;
    for (const size of sizes) {
      const padded = Math.ceil(size / BLOCK_SIZE) * BLOCK_SIZE;
      const data = bytes.subarray(offset + BLOCK_SIZE, offset + BLOCK_SIZE + padded);
      expect(data.subarray(0, size).every((byte) => byte === 0xab), `data of ${size} bytes`).toBe(true);
      expect(data.subarray(size).every((byte) => byte === 0), `padding after ${size} bytes`).toBe(true);
      offset += BLOCK_SIZE + padded;
    }
    expect(bytes.length - offset).toBe(2 * BLOCK_SIZE);
    expect(bytes.subarray(offset).every((byte) => byte === 0)).toBe(true);
    expect(readWithPython(await writeTemp(bytes)).map((m) => m.size)).toEqual(sizes);
  });

  it('records sizes of 8 GiB and more in a pax header', async () => {
    const size = 8 * 1024 ** 3 + 5;
    const header = memberHeader({ name: 'big.safetensors', size, mtime: MTIME });
    expect(header.length).toBe(3 * BLOCK_SIZE);
    expect(String.fromCharCode(header[156]!)).toBe('x');

    // The archive is a sparse file, so the 8 GiB of data are never written to disk.
    const file = await writeTemp(header);
    const handle = await fs.open(file, 'r+');
    const end = header.length + size + paddingBytes(size);
    await handle.truncate(end + 2 * BLOCK_SIZE);
    await handle.close();
    expect(end + 2 * BLOCK_SIZE).toBe(archiveSize([{ name: 'big.safetensors', size, mtime: MTIME }]));

    expect(readWithPython(file, false)).toEqual([{ name: 'big.safetensors', size, mtime: MTIME.getTime() / 1000, mode: 0o644, type: '0' }]);
    const gnu = spawnSync('tar', ['-tvf', file], { encoding: 'utf8' });
    expect(gnu.status).toBe(0);
    expect(gnu.stdout).toMatch(new RegExp(`\\s${size}\\s.*big\\.safetensors`));
    const reader = await fs.open(file, 'r');
    const listed = await listTarMembers(async (offset, length) => {
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await reader.read(buffer, 0, length, offset);
      return buffer.subarray(0, bytesRead);
    });
    await reader.close();
    expect(listed).toEqual([{ name: 'big.safetensors', size, type: '0' }]);
  });

  it('lists members it wrote', async () => {
    const files = [source('a.json', Buffer.from('{}')), source(`${'d'.repeat(120)}/b.bin`, Buffer.alloc(700, 1))];
    const bytes = await collect(tarStream(files));
    const listed = await listTarMembers(async (offset, length) => bytes.subarray(offset, offset + length));
    expect(listed).toEqual([{ name: 'a.json', size: 2, type: '0' }, { name: `${'d'.repeat(120)}/b.bin`, size: 700, type: '0' }]);
    await expect(listTarMembers(async (offset, length) => bytes.subarray(0, bytes.length - 1024).subarray(offset, offset + length))).rejects.toThrow(/truncated/);
  });

  it('fails when a source delivers the wrong length', async () => {
    const short: TarSource = { name: 'short.bin', size: 10, mtime: MTIME, open: async () => Readable.from([Buffer.alloc(4)]) };
    await expect(collect(tarStream([short]))).rejects.toThrow(/ended after 4 of its 10 bytes/);
    const long: TarSource = { name: 'long.bin', size: 3, mtime: MTIME, open: async () => Readable.from([Buffer.alloc(4)]) };
    const errors: unknown[] = [];
    await expect(collect(tarStream([long], { onError: (error) => errors.push(error) }))).rejects.toThrow(/more than its 3 bytes/);
    expect(errors).toHaveLength(1);
  });

  it('destroys the open source when cancelled', async () => {
    // A source that sends one chunk and then waits, as a slow S3 response does.
    const stalled = new Readable({ read() {} });
    stalled.push(Buffer.alloc(100, 1));
    let opened = 0;
    const cancels: number[] = [];
    const errors: unknown[] = [];
    const stream = tarStream([
      { name: 'stalled.bin', size: 1000, mtime: MTIME, open: async () => { opened += 1; return stalled; } },
      { name: 'never.bin', size: 10, mtime: MTIME, open: async () => { opened += 1; return Readable.from([Buffer.alloc(10)]); } },
    ], { onCancel: (sent) => cancels.push(sent), onError: (error) => errors.push(error) });
    const reader = stream.getReader();
    expect((await reader.read()).value!.length).toBe(BLOCK_SIZE);
    expect((await reader.read()).value!.length).toBe(100);
    // The next read waits on the stalled source; cancelling must not wait for it.
    const pending = reader.read();
    await new Promise((resolve) => setTimeout(resolve, 20));
    await reader.cancel();
    expect((await pending).done).toBe(true);
    expect(stalled.destroyed).toBe(true);
    expect(opened).toBe(1);
    expect(cancels).toEqual([BLOCK_SIZE + 100]);
    // The read that the cancel cut short is not reported as a failure.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(errors).toEqual([]);
  });
});
