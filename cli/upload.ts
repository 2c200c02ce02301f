import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';

export interface LocalFile {
  path: string;
  absolute: string;
  size: number;
  sha256: string;
}

export async function describeFile(absolute: string, relative: string): Promise<LocalFile> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(absolute)) hash.update(chunk as Buffer);
  return { path: relative, absolute, size: (await fs.stat(absolute)).size, sha256: hash.digest('hex') };
}

/** Lists the regular files directly inside `dir` (adapters and models are flat folders). */
export async function describeFolder(dir: string): Promise<LocalFile[]> {
  const entries = await fs.readdir(dir, { withFileTypes: true });
  const files = [];
  for (const entry of entries) {
    if (entry.isFile() && !entry.name.startsWith('.') && !entry.name.endsWith('.sha256')) files.push(await describeFile(path.join(dir, entry.name), entry.name));
  }
  return files.sort((a, b) => a.path.localeCompare(b.path));
}

/** PUTs files to their presigned URLs; a null URL means the store already has the content. */
export async function putFiles(files: LocalFile[], targets: { path: string; url: string | null }[], onProgress?: (file: string, done: number, total: number) => void) {
  for (const target of targets) {
    const file = files.find((f) => f.path === target.path)!;
    if (!target.url) {
      onProgress?.(file.path, file.size, file.size);
      continue;
    }
    let sent = 0;
    const stream = createReadStream(file.absolute);
    stream.on('data', (chunk) => {
      sent += chunk.length;
      onProgress?.(file.path, sent, file.size);
    });
    const response = await fetch(target.url, {
      method: 'PUT',
      body: Readable.toWeb(stream) as unknown as BodyInit,
      headers: { 'content-length': String(file.size) },
      duplex: 'half',
    } as RequestInit);
    if (!response.ok) throw new Error(`upload of ${file.path} failed with HTTP ${response.status}: ${(await response.text()).slice(0, 300)}`);
  }
}
