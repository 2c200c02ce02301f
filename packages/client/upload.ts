import { describeBrowserFile, type DescribedFile } from '@/lib/upload';
import { partRange, type UploadTarget } from '@/lib/upload-protocol';
import type { Client } from './index';
import { backoffMs } from './retry';

/** One file to upload: its path inside the adapter folder and its bytes. */
export interface UploadSource {
  path: string;
  blob: Blob;
  // Its sha256 and part hashes when the caller computed them already; hashed here otherwise.
  described?: DescribedFile;
}

/** Progress of an upload: bytes stored so far of one file and of all files. */
export interface UploadProgress {
  path: string;
  fileBytes: number;
  fileSize: number;
  bytes: number;
  totalBytes: number;
}

export interface UploadOptions {
  // What the files become: an adapter version (several files) or a data set (one file).
  purpose: 'adapter' | 'dataset';
  onProgress?: (progress: UploadProgress) => void;
  // An earlier upload of the same files to continue; parts that arrived are not sent again.
  resumeUploadId?: string;
  // Called with the upload id as soon as the server created or resumed the upload.
  onBegin?: (uploadId: string) => void | Promise<void>;
  // Attempts per part before the upload fails (4).
  partAttempts?: number;
}

const PARALLEL_PARTS = 4;

/** Reads a local file as a Blob without loading it into memory (Node.js only). */
export async function fileSource(absolutePath: string, relativePath: string): Promise<UploadSource> {
  const { openAsBlob } = await import('node:fs');
  return { path: relativePath, blob: await openAsBlob(absolutePath) };
}

async function putPart(url: string, body: Blob, path: string, attempts: number): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    let failure: Error;
    try {
      const response = await fetch(url, { method: 'PUT', body, headers: { 'content-length': String(body.size) } });
      if (response.ok) {
        await response.body?.cancel();
        return;
      }
      const text = (await response.text()).slice(0, 300);
      failure = new Error(`upload of ${path} failed with HTTP ${response.status}: ${text}`);
      // A 4xx means the request itself is wrong (a checksum or size mismatch): retrying cannot help.
      if (response.status < 500 && response.status !== 429) throw Object.assign(failure, { final: true });
    } catch (error) {
      if ((error as { final?: boolean }).final) throw error;
      failure = error as Error;
    }
    if (attempt >= attempts) throw failure;
    await new Promise((resolve) => setTimeout(resolve, backoffMs(attempt, 250, 5000)));
  }
}

/**
 * Uploads files straight to S3 through presigned URLs, in parts for large files, and returns
 * the upload id to pass to `adapters.publish` or `datasets.create` (wrapped in `finalizeUpload`
 * from lib/upload-protocol.ts, since the server verifies large files over several calls).
 * Parts are sent four at a time and retried with backoff on network errors, 5xx and 429.
 */
export async function uploadFiles(client: Client, sources: UploadSource[], options: UploadOptions) {
  if (sources.length === 0) throw new Error('no files to upload; pass at least one { path, blob }');
  if (options.purpose === 'dataset' && sources.length !== 1) {
    throw new Error(`a data set is one file, but ${sources.length} were given (${sources.map((s) => s.path).join(', ')})`);
  }
  const files = await Promise.all(sources.map(async (source) => source.described ?? describeBrowserFile(source.blob as File, source.path)));

  let begun = options.resumeUploadId ? await client.uploads.resume.mutate({ uploadId: options.resumeUploadId }).catch(() => null) : null;
  if (!begun) {
    begun = options.purpose === 'adapter'
      ? await client.adapters.beginUpload.mutate({ files })
      : await client.datasets.beginUpload.mutate({ file: files[0]! });
  }
  await options.onBegin?.(begun.uploadId);

  const totalBytes = files.reduce((sum, file) => sum + file.size, 0);
  const stored = new Map<string, number>();
  const report = (path: string, fileSize: number) => {
    const bytes = [...stored.values()].reduce((a, b) => a + b, 0);
    options.onProgress?.({ path, fileBytes: stored.get(path) ?? 0, fileSize, bytes, totalBytes });
  };
  for (const file of files) stored.set(file.path, file.size);

  for (const target of begun.files as UploadTarget[]) {
    const source = sources.find((s) => s.path === target.path);
    if (!source) throw new Error(`the server asked for ${target.path}, which is not among the files given; start a new upload`);
    const size = source.blob.size;
    const missing = target.parts.reduce((sum, part) => {
      const [start, end] = partRange(size, target.partSize, part.partNumber);
      return sum + (end - start);
    }, 0);
    stored.set(target.path, size - missing);
    report(target.path, size);

    let next = 0;
    const worker = async () => {
      while (next < target.parts.length) {
        const part = target.parts[next++]!;
        const [start, end] = partRange(size, target.partSize, part.partNumber);
        await putPart(part.url, source.blob.slice(start, end), target.path, options.partAttempts ?? 4);
        stored.set(target.path, (stored.get(target.path) ?? 0) + (end - start));
        report(target.path, size);
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_PARTS, target.parts.length) }, worker));
  }
  return { uploadId: begun.uploadId, files };
}
