/**
 * The part layout shared by the server, the CLI and the browser. A file larger than one part
 * is uploaded to S3 as a multipart upload, and the client announces the sha256 of every part.
 * Each presigned part URL is signed with its part's checksum, so the store rejects a part
 * whose bytes differ.
 */

// S3 accepts parts of 5 MiB to 5 GiB (the last one may be shorter) and at most 10,000 parts.
export const MIN_PART_SIZE = 5 * 1024 * 1024;
export const MAX_PART_SIZE = 5 * 1024 * 1024 * 1024;
export const MAX_PARTS = 10_000;
export const DEFAULT_PART_SIZE = 16 * 1024 * 1024;
// Above this size a file must be sent in parts, so that a broken connection costs one part.
export const MAX_SINGLE_PUT = 64 * 1024 * 1024;

/** Number of parts of a file of `size` bytes; a file of one part or less is a single PUT. */
export function partCount(size: number, partSize: number): number {
  return Math.max(1, Math.ceil(size / partSize));
}

/** Byte range [start, end) of part `partNumber` (numbered from 1). */
export function partRange(size: number, partSize: number, partNumber: number): [number, number] {
  const start = (partNumber - 1) * partSize;
  return [start, Math.min(size, start + partSize)];
}

/** Upload target of one file: the parts still missing, each with its presigned URL. */
export interface UploadTarget {
  path: string;
  // True when the store already has this content, or every part has arrived.
  done: boolean;
  // Bytes per part; for a single PUT this is the file size.
  partSize: number;
  parts: { partNumber: number; url: string }[];
}

/**
 * Progress of the server's sha256 check of an upload. A finalize call (publish, register,
 * create) returns it while the check is unfinished, because each call hashes a bounded number of
 * bytes; the client calls again with the same input until it gets the finished result.
 */
export interface VerifyingUpload {
  status: 'verifying';
  bytesVerified: number;
  totalBytes: number;
}

export function isVerifying(result: unknown): result is VerifyingUpload {
  return typeof result === 'object' && result !== null && (result as { status?: unknown }).status === 'verifying';
}

// Calls in a row that may verify no bytes (another finalize call of the same upload can win
// every round) before finalizeUpload gives up.
const MAX_CALLS_WITHOUT_PROGRESS = 10;

/**
 * Calls `finalize` until the server has verified every file, reporting progress in between,
 * and returns the finished result.
 */
export async function finalizeUpload<T>(finalize: () => Promise<T>, onProgress?: (bytesVerified: number, totalBytes: number) => void): Promise<Exclude<T, VerifyingUpload>> {
  let last = -1;
  let stalled = 0;
  for (;;) {
    const result = await finalize();
    if (!isVerifying(result)) return result as Exclude<T, VerifyingUpload>;
    onProgress?.(result.bytesVerified, result.totalBytes);
    stalled = result.bytesVerified > last ? 0 : stalled + 1;
    last = Math.max(last, result.bytesVerified);
    if (stalled >= MAX_CALLS_WITHOUT_PROGRESS) {
      throw new Error(`the upload's verification stayed at ${result.bytesVerified} of ${result.totalBytes} bytes for ${stalled} calls; another client may be finalizing the same upload, so try again later`);
    }
  }
}
