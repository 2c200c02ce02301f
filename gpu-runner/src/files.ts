import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RemoteFile } from '../../server/contracts/runner';

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const ATTEMPTS = 5;

/** Retries `action` on any error with exponential backoff and jitter; the last error is thrown. */
export async function withRetries<T>(what: string, action: (attempt: number) => Promise<T>, attempts = ATTEMPTS): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await action(attempt);
    } catch (error) {
      if (attempt >= attempts || (error as { final?: boolean }).final) {
        throw new Error(`${what} failed after ${attempt} attempts: ${(error as Error).message}`, { cause: error });
      }
      await sleep(Math.min(30_000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2));
    }
  }
}

/**
 * Downloads a presigned URL to `target`, verifying size and sha256; the file appears under
 * its final name only when both match. An interrupted download continues from the bytes
 * already in `target.partial` with a Range request, and network errors are retried.
 */
export async function download(file: RemoteFile, target: string): Promise<{ resumedFrom: number }> {
  await fs.mkdir(path.dirname(target), { recursive: true });
  const partial = `${target}.partial`;
  return withRetries(`download of ${file.path}`, async () => {
    const have = (await fs.stat(partial).catch(() => null))?.size ?? 0;
    const hash = createHash('sha256');
    let size = 0;
    let response: Response;
    if (have > 0 && have < file.size) {
      response = await fetch(file.url, { headers: { range: `bytes=${have}-` } });
      if (response.status === 206) {
        for await (const chunk of createReadStream(partial)) hash.update(chunk as Buffer);
        size = have;
      }
    } else {
      response = await fetch(file.url);
    }
    if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
    // Anything but 206 is the whole file again.
    const append = response.status === 206;

    const body = Readable.fromWeb(response.body as import('node:stream/web').ReadableStream);
    body.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      size += chunk.length;
    });
    await pipeline(body, createWriteStream(partial, { flags: append ? 'a' : 'w' }));

    const digest = hash.digest('hex');
    if (size !== file.size || digest !== file.sha256) {
      await fs.rm(partial, { force: true });
      throw new Error(`corrupt: got ${size} bytes with sha256 ${digest}, expected ${file.size} bytes with ${file.sha256}`);
    }
    await fs.rename(partial, target);
    return { resumedFrom: append ? have : 0 };
  });
}

/** PUTs a local file to a presigned URL, retrying network errors and 5xx responses. */
export async function upload(url: string, file: string, size: number): Promise<void> {
  await withRetries(`upload of ${path.basename(file)}`, async () => {
    const response = await fetch(url, {
      method: 'PUT',
      body: Readable.toWeb(createReadStream(file)) as unknown as BodyInit,
      headers: { 'content-length': String(size) },
      duplex: 'half',
    } as RequestInit);
    if (!response.ok) {
      const error = new Error(`HTTP ${response.status}: ${(await response.text()).slice(0, 300)}`);
      // A 4xx (a checksum or signature mismatch) fails the same way every time.
      if (response.status < 500) Object.assign(error, { final: true });
      throw error;
    }
  });
}
