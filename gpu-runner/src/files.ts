import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { RemoteFile } from '../../server/contracts/runner';

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Downloads a presigned URL to `target`, verifying size and sha256 on the way; the file
 * appears under its final name only when both match.
 */
export async function download(file: RemoteFile, target: string): Promise<void> {
  await fs.mkdir(path.dirname(target), { recursive: true });
  const partial = `${target}.partial`;
  const response = await fetch(file.url);
  if (!response.ok || !response.body) throw new Error(`download of ${file.path} failed with HTTP ${response.status}`);

  const hash = createHash('sha256');
  let size = 0;
  const body = Readable.fromWeb(response.body as import('node:stream/web').ReadableStream);
  body.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    size += chunk.length;
  });
  await pipeline(body, createWriteStream(partial));

  const digest = hash.digest('hex');
  if (size !== file.size || digest !== file.sha256) {
    await fs.rm(partial, { force: true });
    throw new Error(`download of ${file.path} is corrupt: got ${size} bytes with sha256 ${digest}, expected ${file.size} bytes with ${file.sha256}`);
  }
  await fs.rename(partial, target);
}

/** PUTs a local file to a presigned URL. */
export async function upload(url: string, file: string, size: number): Promise<void> {
  const response = await fetch(url, {
    method: 'PUT',
    body: Readable.toWeb(createReadStream(file)) as unknown as BodyInit,
    headers: { 'content-length': String(size) },
    duplex: 'half',
  } as RequestInit);
  if (!response.ok) throw new Error(`upload of ${path.basename(file)} failed with HTTP ${response.status}: ${(await response.text()).slice(0, 300)}`);
}
