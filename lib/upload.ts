/** Browser-side helpers for direct-to-S3 uploads through presigned URLs, in parts. */
import { createSHA256 } from 'hash-wasm';
import { DEFAULT_PART_SIZE, partRange, type UploadTarget } from './upload-protocol';

export interface DescribedFile {
  path: string;
  size: number;
  sha256: string;
  partSize?: number;
  parts?: string[];
}

// Bytes read per step while hashing; also the granularity of the hashing progress.
const READ_CHUNK = 4 * 1024 * 1024;

/**
 * Hashes a file and each of its parts incrementally (never the whole file in memory).
 * `onProgress` gets the fraction hashed, from 0 to 1.
 */
export async function describeBrowserFile(file: File, path = file.name, onProgress?: (fraction: number) => void, partSize = DEFAULT_PART_SIZE): Promise<DescribedFile> {
  const whole = await createSHA256();
  const part = await createSHA256();
  whole.init();
  part.init();
  const parts: string[] = [];
  let inPart = 0;
  for (let offset = 0; offset < file.size; offset += READ_CHUNK) {
    let chunk = new Uint8Array(await file.slice(offset, Math.min(file.size, offset + READ_CHUNK)).arrayBuffer());
    whole.update(chunk);
    while (chunk.length > 0) {
      const take = Math.min(chunk.length, partSize - inPart);
      part.update(chunk.subarray(0, take));
      inPart += take;
      chunk = chunk.subarray(take);
      if (inPart === partSize) {
        parts.push(part.digest('hex'));
        part.init();
        inPart = 0;
      }
    }
    onProgress?.(Math.min(1, (offset + READ_CHUNK) / file.size));
  }
  if (inPart > 0) parts.push(part.digest('hex'));
  const described: DescribedFile = { path, size: file.size, sha256: whole.digest('hex') };
  return file.size > partSize ? { ...described, partSize, parts } : described;
}

function putWithProgress(url: string, body: Blob, onProgress: (loaded: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open('PUT', url);
    request.upload.onprogress = (event) => onProgress(event.loaded);
    request.onload = () => (request.status >= 200 && request.status < 300 ? resolve() : reject(new Error(`upload failed with HTTP ${request.status}: ${request.responseText.slice(0, 300)}`)));
    request.onerror = () => reject(new Error('upload failed: the storage server could not be reached; try again to resume'));
    request.send(body);
  });
}

const PARALLEL_PARTS = 4;

/**
 * PUTs the parts a target still needs, a few at a time. `onProgress` gets the bytes of this
 * file stored so far (parts that arrived earlier count as done) and its size.
 */
export async function uploadParts(file: File, target: UploadTarget, onProgress: (done: number, total: number) => void): Promise<void> {
  const inFlight = new Map<number, number>();
  let finished = file.size - target.parts.reduce((sum, part) => {
    const [start, end] = partRange(file.size, target.partSize, part.partNumber);
    return sum + (end - start);
  }, 0);
  const report = () => onProgress(finished + [...inFlight.values()].reduce((a, b) => a + b, 0), file.size);
  report();
  let next = 0;
  const worker = async () => {
    while (next < target.parts.length) {
      const part = target.parts[next++]!;
      const [start, end] = partRange(file.size, target.partSize, part.partNumber);
      await putWithProgress(part.url, file.slice(start, end), (loaded) => {
        inFlight.set(part.partNumber, loaded);
        report();
      });
      inFlight.delete(part.partNumber);
      finished += end - start;
      report();
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_PARTS, target.parts.length) }, worker));
}
