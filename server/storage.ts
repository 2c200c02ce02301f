import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, DeleteObjectCommand, GetObjectCommand,
  HeadBucketCommand, HeadObjectCommand, ListPartsCommand, NoSuchUpload, NotFound, PutObjectCommand, S3Client, S3ServiceException, UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { getEnv } from './env';

let client: S3Client | undefined;

function s3(): S3Client {
  const env = getEnv();
  client ??= new S3Client({
    endpoint: env.S3_ENDPOINT,
    region: env.S3_REGION,
    forcePathStyle: true,
    // Without static keys the SDK's default chain supplies credentials (the IAM role on AWS).
    credentials: env.S3_ACCESS_KEY_ID && env.S3_SECRET_ACCESS_KEY ? { accessKeyId: env.S3_ACCESS_KEY_ID, secretAccessKey: env.S3_SECRET_ACCESS_KEY } : undefined,
    // Presigned URLs must not carry a CRC the browser cannot compute; integrity comes from
    // the sha256 checksum that every upload URL is signed with.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  return client;
}

/** Returns the S3 key of a content-addressed object. */
export function blobKey(sha256: string): string {
  return `blobs/sha256/${sha256.slice(0, 2)}/${sha256}`;
}

/**
 * Presigns a PUT of exactly `size` bytes whose sha256 must match: the store rejects any
 * other body, so a finished upload is already verified by content.
 */
export async function presignPut(key: string, size: number, sha256Hex: string): Promise<string> {
  const env = getEnv();
  const command = new PutObjectCommand({ Bucket: env.S3_BUCKET, Key: key, ContentLength: size, ChecksumSHA256: base64Sha256(sha256Hex) });
  return getSignedUrl(s3(), command, { expiresIn: env.S3_PRESIGN_SECONDS });
}

function base64Sha256(sha256Hex: string): string {
  return Buffer.from(sha256Hex, 'hex').toString('base64');
}

/** Starts a multipart upload whose parts each carry a sha256 checksum; returns its upload id. */
export async function createMultipartUpload(key: string): Promise<string> {
  const out = await s3().send(new CreateMultipartUploadCommand({ Bucket: getEnv().S3_BUCKET, Key: key, ChecksumAlgorithm: 'SHA256' }));
  if (!out.UploadId) throw new Error(`S3 returned no upload id for ${key}`);
  return out.UploadId;
}

/** Presigns the PUT of one part (numbered from 1) of exactly `size` bytes with the given sha256. */
export async function presignUploadPart(key: string, uploadId: string, partNumber: number, size: number, sha256Hex: string): Promise<string> {
  const env = getEnv();
  const command = new UploadPartCommand({
    Bucket: env.S3_BUCKET, Key: key, UploadId: uploadId, PartNumber: partNumber, ContentLength: size, ChecksumSHA256: base64Sha256(sha256Hex),
  });
  return getSignedUrl(s3(), command, { expiresIn: env.S3_PRESIGN_SECONDS });
}

export interface StoredPart {
  partNumber: number;
  size: number;
  etag: string;
  // Hex sha256 of the part as the store reports it, or null when the store keeps none.
  sha256: string | null;
}

/** Lists the parts uploaded so far, or returns null when the multipart upload no longer exists. */
export async function listParts(key: string, uploadId: string): Promise<StoredPart[] | null> {
  const parts: StoredPart[] = [];
  let marker: string | undefined;
  try {
    for (;;) {
      const out = await s3().send(new ListPartsCommand({ Bucket: getEnv().S3_BUCKET, Key: key, UploadId: uploadId, PartNumberMarker: marker }));
      for (const part of out.Parts ?? []) {
        parts.push({
          partNumber: part.PartNumber!,
          size: part.Size ?? 0,
          etag: part.ETag ?? '',
          sha256: part.ChecksumSHA256 ? Buffer.from(part.ChecksumSHA256, 'base64').toString('hex') : null,
        });
      }
      if (!out.IsTruncated) return parts;
      marker = out.NextPartNumberMarker;
    }
  } catch (error) {
    if (error instanceof NoSuchUpload || (error instanceof S3ServiceException && error.$metadata.httpStatusCode === 404)) return null;
    throw error;
  }
}

/** Joins the listed parts, in order, into the object. */
export async function completeMultipartUpload(key: string, uploadId: string, parts: { partNumber: number; etag: string; sha256: string }[]): Promise<void> {
  await s3().send(new CompleteMultipartUploadCommand({
    Bucket: getEnv().S3_BUCKET, Key: key, UploadId: uploadId,
    MultipartUpload: { Parts: parts.map((part) => ({ PartNumber: part.partNumber, ETag: part.etag, ChecksumSHA256: base64Sha256(part.sha256) })) },
  }));
}

/** Aborts a multipart upload and frees its parts; aborting one that is gone succeeds. */
export async function abortMultipartUpload(key: string, uploadId: string): Promise<void> {
  try {
    await s3().send(new AbortMultipartUploadCommand({ Bucket: getEnv().S3_BUCKET, Key: key, UploadId: uploadId }));
  } catch (error) {
    if (error instanceof NoSuchUpload || (error instanceof S3ServiceException && error.$metadata.httpStatusCode === 404)) return;
    throw error;
  }
}

/** Streams an object; the caller must consume or destroy the stream. */
export async function getObjectStream(key: string): Promise<Readable> {
  const out = await s3().send(new GetObjectCommand({ Bucket: getEnv().S3_BUCKET, Key: key }));
  return out.Body as Readable;
}

/** Presigns a GET; `filename` sets the name a browser saves the download under. */
export async function presignGet(key: string, filename?: string): Promise<string> {
  const env = getEnv();
  const command = new GetObjectCommand({
    Bucket: env.S3_BUCKET,
    Key: key,
    ResponseContentDisposition: filename ? `attachment; filename="${filename.replace(/["\\\r\n]/g, '_')}"` : undefined,
  });
  return getSignedUrl(s3(), command, { expiresIn: env.S3_PRESIGN_SECONDS });
}

/** Returns the object's size in bytes, or null when it does not exist. */
export async function headObject(key: string): Promise<number | null> {
  try {
    const head = await s3().send(new HeadObjectCommand({ Bucket: getEnv().S3_BUCKET, Key: key }));
    return head.ContentLength ?? 0;
  } catch (error) {
    if (error instanceof NotFound || (error instanceof S3ServiceException && error.$metadata.httpStatusCode === 404)) return null;
    throw error;
  }
}

/** Reads bytes [start, end] inclusive of an object. */
export async function getRange(key: string, start: number, end: number): Promise<Buffer> {
  const out = await s3().send(new GetObjectCommand({ Bucket: getEnv().S3_BUCKET, Key: key, Range: `bytes=${start}-${end}` }));
  return Buffer.from(await out.Body!.transformToByteArray());
}

/** Reads a whole object; callers check its size first, because the whole object is kept in memory. */
export async function getObject(key: string): Promise<Buffer> {
  const out = await s3().send(new GetObjectCommand({ Bucket: getEnv().S3_BUCKET, Key: key }));
  return Buffer.from(await out.Body!.transformToByteArray());
}

/**
 * Streams bytes [start, end) of an object; the caller must consume or destroy the stream.
 * `end` must be greater than `start` (S3 rejects an empty range).
 */
export async function getRangeStream(key: string, start: number, end: number): Promise<Readable> {
  const out = await s3().send(new GetObjectCommand({ Bucket: getEnv().S3_BUCKET, Key: key, Range: `bytes=${start}-${end - 1}` }));
  return out.Body as Readable;
}

/** Streams an object through sha256 without holding it in memory. */
export async function hashObject(key: string): Promise<string> {
  const out = await s3().send(new GetObjectCommand({ Bucket: getEnv().S3_BUCKET, Key: key }));
  const hash = createHash('sha256');
  for await (const chunk of out.Body as Readable) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Server-side write for small objects produced by the server itself. */
export async function putObject(key: string, body: Buffer): Promise<void> {
  await s3().send(new PutObjectCommand({ Bucket: getEnv().S3_BUCKET, Key: key, Body: body }));
}

export async function checkBucket(): Promise<void> {
  await s3().send(new HeadBucketCommand({ Bucket: getEnv().S3_BUCKET }));
}

/** Deletes an object; deleting one that does not exist succeeds, as S3 defines it. */
export async function deleteObject(key: string): Promise<void> {
  await s3().send(new DeleteObjectCommand({ Bucket: getEnv().S3_BUCKET, Key: key }));
}
