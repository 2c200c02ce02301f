import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { ARCHIVE_WARNING_HEADER, archivePath, decodeHeaderText } from '../lib/adapter-archive';
import { listTarMembers, type ListedMember } from '../server/formats/tar';

export interface PulledArchive {
  file: string;
  version: number;
  bytes: number;
  warning: string | null;
  members: ListedMember[];
}

/** Reads the error message of a failed request: the JSON `error` field, else the body text. */
async function errorMessage(response: Response): Promise<string> {
  const text = await response.text();
  try {
    const parsed = JSON.parse(text) as { error?: unknown };
    if (typeof parsed.error === 'string') return parsed.error;
  } catch {
    // The body is not JSON, for example when a proxy sent the error.
  }
  return text.slice(0, 500) || response.statusText;
}

/**
 * Downloads a version's archive into `file` (through `file.partial`, renamed when the body
 * is complete) and lists its members. It checks the HTTP status and the length, not the
 * files' sha256. `pull` without `--archive` checks every file's sha256.
 */
export async function pullArchive(input: {
  url: string; token?: string; namespace: string; name: string; version?: number; file: string;
  onProgress?: (done: number, total: number) => void;
}): Promise<PulledArchive> {
  const target = new URL(archivePath(input.namespace, input.name, input.version ?? 'latest'), input.url);
  const response = await fetch(target, { headers: input.token ? { Authorization: `Bearer ${input.token}` } : {} });
  if (!response.ok || !response.body) {
    throw new Error(`archive download of ${input.namespace}/${input.name}@${input.version ?? 'latest'} failed with HTTP ${response.status}: ${await errorMessage(response)}`);
  }

  const total = Number(response.headers.get('content-length') ?? 0);
  const rawWarning = response.headers.get(ARCHIVE_WARNING_HEADER);
  let warning = rawWarning;
  try {
    warning = rawWarning === null ? null : decodeHeaderText(rawWarning);
  } catch {
    // A header this CLI did not encode is shown as it came.
  }

  const partial = `${input.file}.partial`;
  let done = 0;
  const count = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      done += chunk.length;
      input.onProgress?.(done, total);
      callback(null, chunk);
    },
  });
  try {
    await pipeline(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>), count, createWriteStream(partial));
  } catch (error) {
    await fs.rm(partial, { force: true });
    throw new Error(`archive download of ${input.namespace}/${input.name} stopped after ${done} of ${total} bytes (${(error as Error).message}); run the command again`);
  }
  if (response.headers.has('content-length') && done !== total) {
    await fs.rm(partial, { force: true });
    throw new Error(`archive download of ${input.namespace}/${input.name} ended after ${done} of ${total} bytes; run the command again`);
  }
  await fs.rename(partial, input.file);

  const handle = await fs.open(input.file, 'r');
  try {
    const members = await listTarMembers(async (offset, length) => {
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, offset);
      return buffer.subarray(0, bytesRead);
    });
    return { file: input.file, version: Number(response.headers.get('x-adapter-version')), bytes: done, warning, members };
  } finally {
    await handle.close();
  }
}
