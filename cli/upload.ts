import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { DEFAULT_PART_SIZE, partRange, type UploadTarget } from '../lib/upload-protocol';

export interface LocalFile {
  path: string;
  absolute: string;
  size: number;
  sha256: string;
  // Set for files larger than one part: bytes per part and the sha256 of each part.
  partSize?: number;
  parts?: string[];
}

/** Hashes a file and, when it is larger than one part, each of its parts, in one read. */
export async function describeFile(absolute: string, relative: string, partSize = DEFAULT_PART_SIZE): Promise<LocalFile> {
  const size = (await fs.stat(absolute)).size;
  const whole = createHash('sha256');
  const parts: string[] = [];
  let part = createHash('sha256');
  let inPart = 0;
  for await (const chunk of createReadStream(absolute, { highWaterMark: 1024 * 1024 })) {
    let buffer = chunk as Buffer;
    whole.update(buffer);
    while (buffer.length > 0) {
      const take = Math.min(buffer.length, partSize - inPart);
      part.update(buffer.subarray(0, take));
      inPart += take;
      buffer = buffer.subarray(take);
      if (inPart === partSize) {
        parts.push(part.digest('hex'));
        part = createHash('sha256');
        inPart = 0;
      }
    }
  }
  if (inPart > 0) parts.push(part.digest('hex'));
  const file: LocalFile = { path: relative, absolute, size, sha256: whole.digest('hex') };
  if (size > partSize) Object.assign(file, { partSize, parts });
  return file;
}

/** Returns the announcement of a file for beginUpload (part hashes only for multipart files). */
export function announce(file: LocalFile) {
  const { path: p, size, sha256, partSize, parts } = file;
  return partSize ? { path: p, size, sha256, partSize, parts } : { path: p, size, sha256 };
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

/**
 * Checks that a folder contains a PEFT adapter before anything is uploaded. Returns a message
 * naming the folder and the files it lacks, or null when the required files are there.
 */
export function describeFolderProblem(dir: string, files: LocalFile[]): string | null {
  const expected = 'a PEFT adapter folder needs adapter_config.json and adapter_model.safetensors, and should have a README.md model card, as `model.save_pretrained(dir)` writes them';
  if (files.length === 0) return `folder ${dir} has no files to publish (hidden files are skipped); ${expected}`;
  // A pickle checkpoint gets the server's conversion advice, which names the file and the fix.
  if (files.some((file) => /\.(bin|pt|pth|ckpt|pkl|pickle)$/i.test(file.path))) return null;
  const missing = ['adapter_config.json', 'adapter_model.safetensors'].filter((name) => !files.some((file) => file.path === name));
  if (missing.length > 0) return `folder ${dir} lacks ${missing.join(' and ')} (it has ${files.map((file) => file.path).join(', ')}); ${expected}`;
  return null;
}

const PARALLEL_PARTS = 4;
const PART_ATTEMPTS = 4;

async function putPart(url: string, file: LocalFile, start: number, end: number, onBytes: (n: number) => void): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      const body = end > start ? await readRange(file.absolute, start, end) : Buffer.alloc(0);
      const response = await fetch(url, { method: 'PUT', body: body as unknown as BodyInit, headers: { 'content-length': String(end - start) } });
      if (!response.ok) {
        const text = (await response.text()).slice(0, 300);
        // 4xx means the request itself is wrong (a checksum or size mismatch): retrying cannot help.
        if (response.status < 500) throw Object.assign(new Error(`upload of ${file.path} failed with HTTP ${response.status}: ${text}`), { final: true });
        throw new Error(`upload of ${file.path} failed with HTTP ${response.status}: ${text}`);
      }
      onBytes(end - start);
      return;
    } catch (error) {
      if ((error as { final?: boolean }).final || attempt >= PART_ATTEMPTS) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250 * 2 ** attempt * (0.5 + Math.random())));
    }
  }
}

async function readRange(absolute: string, start: number, end: number): Promise<Buffer> {
  const handle = await fs.open(absolute, 'r');
  try {
    const buffer = Buffer.alloc(end - start);
    let offset = 0;
    while (offset < buffer.length) {
      const { bytesRead } = await handle.read(buffer, offset, buffer.length - offset, start + offset);
      if (bytesRead === 0) throw new Error(`${absolute} became shorter while it was being uploaded`);
      offset += bytesRead;
    }
    return buffer;
  } finally {
    await handle.close();
  }
}

/**
 * PUTs the parts each target still needs, a few at a time, retrying network errors and 5xx
 * with backoff. `onProgress` gets the bytes done and the total for each file.
 */
export async function putFiles(files: LocalFile[], targets: UploadTarget[], onProgress?: (file: string, done: number, total: number) => void) {
  for (const target of targets) {
    const file = files.find((f) => f.path === target.path)!;
    const pending = target.parts;
    let done = file.size - pending.reduce((sum, part) => {
      const [start, end] = partRange(file.size, target.partSize, part.partNumber);
      return sum + (end - start);
    }, 0);
    onProgress?.(file.path, done, file.size);
    let next = 0;
    const worker = async () => {
      while (next < pending.length) {
        const part = pending[next++]!;
        const [start, end] = partRange(file.size, target.partSize, part.partNumber);
        await putPart(part.url, file, start, end, (n) => {
          done += n;
          onProgress?.(file.path, done, file.size);
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_PARTS, pending.length) }, worker));
  }
}
