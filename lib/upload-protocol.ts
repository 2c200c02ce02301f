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
