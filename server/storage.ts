import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  DeleteObjectCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, NotFound, PutObjectCommand, S3Client, S3ServiceException,
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
    credentials: { accessKeyId: env.S3_ACCESS_KEY_ID, secretAccessKey: env.S3_SECRET_ACCESS_KEY },
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
  const checksum = Buffer.from(sha256Hex, 'hex').toString('base64');
  const command = new PutObjectCommand({ Bucket: env.S3_BUCKET, Key: key, ContentLength: size, ChecksumSHA256: checksum });
  return getSignedUrl(s3(), command, { expiresIn: env.S3_PRESIGN_SECONDS });
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
