import { and, eq, gt, inArray, isNull, lt, sql } from 'drizzle-orm';
import { z } from 'zod';
import { blobs, uploadSessions, type SessionFile } from '@/drizzle/schema';
import { MAX_PART_SIZE, MAX_PARTS, MAX_SINGLE_PUT, MIN_PART_SIZE, partCount, partRange, type UploadTarget } from '@/lib/upload-protocol';
import type { Db } from '../db';
import {
  abortMultipartUpload, blobKey, completeMultipartUpload, createMultipartUpload, deleteObject, hashObject, headObject, listParts,
  presignPut, presignUploadPart,
} from '../storage';
import { logger } from '../logger';
import { badRequest, conflict, notFound } from './errors';

export const PICKLE_EXTENSIONS = ['.bin', '.pt', '.pth', '.ckpt', '.pkl', '.pickle'];

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'sha256 must be 64 lowercase hex digits');

export const uploadFile = z.object({
  path: z.string().min(1).max(200).regex(/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/, 'file paths use letters, digits, dot, dash, underscore and /').refine((p) => !p.split('/').includes('..'), 'file paths may not contain ..'),
  size: z.number().int().nonnegative().max(50 * 1024 ** 3),
  sha256: sha256Hex,
  // Multipart: bytes per part and the sha256 of each part, in order.
  partSize: z.number().int().min(MIN_PART_SIZE).max(MAX_PART_SIZE).optional(),
  parts: z.array(sha256Hex).max(MAX_PARTS).optional(),
});
export type UploadFile = z.infer<typeof uploadFile>;

export interface VerifiedFile {
  path: string;
  size: number;
  sha256: string;
  s3Key: string;
}

// An upload session left unfinished this long can no longer be finalized.
const SESSION_SECONDS = 24 * 3600;

/** Rejects pickle checkpoints before any byte is uploaded: they can run code when loaded. */
export function rejectPickles(files: { path: string }[]): void {
  const pickle = files.find((file) => PICKLE_EXTENSIONS.some((ext) => file.path.toLowerCase().endsWith(ext)));
  if (pickle) {
    throw badRequest(`${pickle.path} is a pickle file, which is never loaded here because unpickling can run arbitrary code; convert it with \`PeftModel.from_pretrained(...).save_pretrained(dir, safe_serialization=True)\` and upload adapter_model.safetensors`);
  }
}

/** Checks the announced part layout of one file; returns whether it goes up in parts. */
function checkParts(file: UploadFile): boolean {
  if (file.parts === undefined && file.partSize === undefined) {
    if (file.size > MAX_SINGLE_PUT) {
      throw badRequest(`file ${file.path} has ${file.size} bytes; files over ${MAX_SINGLE_PUT} bytes are uploaded in parts: send partSize and the sha256 of each part`);
    }
    return false;
  }
  if (file.parts === undefined || file.partSize === undefined) throw badRequest(`file ${file.path}: send partSize and parts together`);
  const expected = partCount(file.size, file.partSize);
  if (file.parts.length !== expected) {
    throw badRequest(`file ${file.path} has ${file.size} bytes, which makes ${expected} parts of ${file.partSize} bytes, but ${file.parts.length} part hashes were sent`);
  }
  return true;
}

/** S3 key of a stored blob: its own key when it was uploaded in parts, else the content address. */
export async function blobObjectKey(db: Db, sha256: string): Promise<string> {
  const [row] = await db.select({ s3Key: blobs.s3Key }).from(blobs).where(eq(blobs.sha256, sha256)).limit(1);
  return row?.s3Key ?? blobKey(sha256);
}

async function partTargets(file: SessionFile, missing: number[]): Promise<UploadTarget['parts']> {
  return Promise.all(missing.map(async (partNumber) => {
    const [start, end] = partRange(file.size, file.partSize!, partNumber);
    return { partNumber, url: await presignUploadPart(file.key!, file.multipartId!, partNumber, end - start, file.parts![partNumber - 1]!) };
  }));
}

/**
 * Opens an upload and returns, for each file, the presigned PUTs still needed: none when the
 * store already has the content (files are stored once per sha256).
 */
export async function beginUpload(db: Db, input: { userId: string | null; purpose: typeof uploadSessions.$inferInsert.purpose; files: UploadFile[] }): Promise<{ uploadId: string; files: UploadTarget[] }> {
  const paths = new Set<string>();
  const multipart = input.files.map((file) => {
    if (paths.has(file.path)) throw badRequest(`file ${file.path} is listed twice`);
    paths.add(file.path);
    return checkParts(file);
  });

  await removeAbandonedUploads(db);
  const known = input.files.length === 0 ? [] : await db.select({ sha256: blobs.sha256 }).from(blobs).where(inArray(blobs.sha256, input.files.map((f) => f.sha256)));
  const stored = new Set(known.map((row) => row.sha256));

  const [session] = await db.insert(uploadSessions).values({
    userId: input.userId,
    purpose: input.purpose,
    files: [],
    expiresAt: sql`now() + make_interval(secs => ${SESSION_SECONDS})`,
  }).returning({ id: uploadSessions.id });
  const uploadId = session!.id;

  const sessionFiles: SessionFile[] = [];
  for (const [index, file] of input.files.entries()) {
    const entry: SessionFile = { path: file.path, size: file.size, sha256: file.sha256 };
    if (multipart[index] && !stored.has(file.sha256)) {
      // A key of its own: an unverified multipart object never sits at a content address.
      entry.key = `blobs/upload/${uploadId}/${index}`;
      entry.multipartId = await createMultipartUpload(entry.key);
      entry.partSize = file.partSize;
      entry.parts = file.parts;
    }
    sessionFiles.push(entry);
  }
  await db.update(uploadSessions).set({ files: sessionFiles }).where(eq(uploadSessions.id, uploadId));

  const files = await Promise.all(sessionFiles.map(async (file): Promise<UploadTarget> => {
    if (stored.has(file.sha256)) return { path: file.path, done: true, partSize: file.size, parts: [] };
    if (file.multipartId) {
      const all = Array.from({ length: file.parts!.length }, (_, i) => i + 1);
      return { path: file.path, done: false, partSize: file.partSize!, parts: await partTargets(file, all) };
    }
    return { path: file.path, done: false, partSize: file.size, parts: [{ partNumber: 1, url: await presignPut(blobKey(file.sha256), file.size, file.sha256) }] };
  }));
  return { uploadId, files };
}

async function openSession(db: Db, uploadId: string, userId: string | null, purpose?: string) {
  const [session] = await db.select().from(uploadSessions).where(and(
    eq(uploadSessions.id, uploadId),
    userId ? eq(uploadSessions.userId, userId) : isNull(uploadSessions.userId),
    isNull(uploadSessions.completedAt),
    gt(uploadSessions.expiresAt, sql`now()`),
  )).limit(1);
  if (!session || (purpose && session.purpose !== purpose)) throw notFound(purpose ? `open ${purpose} upload ${uploadId}` : `open upload ${uploadId}`);
  return session;
}

/**
 * Resumes an interrupted upload: lists the parts that already arrived and presigns fresh URLs
 * for the rest, so no finished part is sent again.
 */
export async function resumeUpload(db: Db, uploadId: string, userId: string | null): Promise<{ uploadId: string; files: UploadTarget[] }> {
  const session = await openSession(db, uploadId, userId);
  const hashes = session.files.map((file) => file.sha256);
  const known = hashes.length === 0 ? [] : await db.select({ sha256: blobs.sha256 }).from(blobs).where(inArray(blobs.sha256, hashes));
  const stored = new Set(known.map((row) => row.sha256));

  const files = await Promise.all(session.files.map(async (file): Promise<UploadTarget> => {
    if (stored.has(file.sha256)) return { path: file.path, done: true, partSize: file.size, parts: [] };
    if (file.multipartId) {
      const uploaded = await listParts(file.key!, file.multipartId);
      if (uploaded === null) throw conflict(`the multipart upload of ${file.path} was aborted; begin a new upload`);
      const sizes = new Map(uploaded.map((part) => [part.partNumber, part.size]));
      const missing = file.parts!.map((_, i) => i + 1).filter((n) => {
        const [start, end] = partRange(file.size, file.partSize!, n);
        return sizes.get(n) !== end - start;
      });
      return { path: file.path, done: missing.length === 0, partSize: file.partSize!, parts: await partTargets(file, missing) };
    }
    const size = await headObject(blobKey(file.sha256));
    if (size === file.size) return { path: file.path, done: true, partSize: file.size, parts: [] };
    return { path: file.path, done: false, partSize: file.size, parts: [{ partNumber: 1, url: await presignPut(blobKey(file.sha256), file.size, file.sha256) }] };
  }));
  return { uploadId, files };
}

/**
 * Checks that every announced file is in the store with its size and sha256, records
 * the blobs, and closes the session. Nothing becomes visible unless every file passes.
 */
export async function finishUpload(db: Db, uploadId: string, userId: string | null, purpose: string): Promise<VerifiedFile[]> {
  const session = await openSession(db, uploadId, userId, purpose);
  return verifyFiles(db, session.files);
}

/**
 * Joins a multipart file after checking that every part arrived with its announced size.
 * The store checked each part's sha256 on arrival, because each part URL was signed with it.
 */
async function completeParts(file: SessionFile): Promise<void> {
  if (await headObject(file.key!) === file.size) return; // completed by an earlier finalize
  const uploaded = await listParts(file.key!, file.multipartId!);
  if (uploaded === null) throw badRequest(`the multipart upload of ${file.path} no longer exists; begin a new upload`);
  const byNumber = new Map(uploaded.map((part) => [part.partNumber, part]));
  const joined = [];
  for (const [i, sha256] of file.parts!.entries()) {
    const partNumber = i + 1;
    const [start, end] = partRange(file.size, file.partSize!, partNumber);
    const part = byNumber.get(partNumber);
    if (!part) throw badRequest(`file ${file.path}: part ${partNumber} of ${file.parts!.length} was not uploaded; resume the upload and send it`);
    if (part.size !== end - start) throw badRequest(`file ${file.path}: part ${partNumber} has ${part.size} bytes in storage but should have ${end - start}; resume the upload to send it again`);
    if (part.sha256 !== null && part.sha256 !== sha256) throw badRequest(`file ${file.path}: part ${partNumber} has sha256 ${part.sha256} in storage but ${sha256} was announced; resume the upload`);
    joined.push({ partNumber, etag: part.etag, sha256 });
  }
  await completeMultipartUpload(file.key!, file.multipartId!, joined);
}

/** Checks each file is in the store with the announced size and sha256, and records its blob. */
export async function verifyFiles(db: Db, files: SessionFile[]): Promise<VerifiedFile[]> {
  const verified: VerifiedFile[] = [];
  for (const file of files) {
    const [existing] = await db.select({ s3Key: blobs.s3Key }).from(blobs).where(eq(blobs.sha256, file.sha256)).limit(1);
    if (existing) {
      verified.push({ path: file.path, size: file.size, sha256: file.sha256, s3Key: existing.s3Key });
      continue;
    }

    if (file.multipartId) await completeParts(file);
    const key = file.key ?? blobKey(file.sha256);
    const size = await headObject(key);
    if (size === null) throw badRequest(`file ${file.path} was not uploaded; PUT it to its presigned URL, then finalize again`);
    if (size !== file.size) throw badRequest(`file ${file.path} has ${size} bytes in storage but ${file.size} were announced; upload it again`);

    // Parts carry their own checksums, and a single PUT is signed with the file's, but the
    // whole file's sha256 is what other uploads trust when they skip this content: hash once.
    const actual = await hashObject(key);
    if (actual !== file.sha256) {
      if (file.key) await deleteObject(file.key);
      throw badRequest(`file ${file.path} has sha256 ${actual} in storage but ${file.sha256} was announced; upload it again`);
    }
    const [recorded] = await db.insert(blobs).values({ sha256: file.sha256, size: file.size, s3Key: key }).onConflictDoNothing().returning({ s3Key: blobs.s3Key });
    if (!recorded) {
      // Another upload of the same content finished first; keep its copy.
      if (file.key) await deleteObject(file.key);
      verified.push({ path: file.path, size: file.size, sha256: file.sha256, s3Key: await blobObjectKey(db, file.sha256) });
      continue;
    }
    verified.push({ path: file.path, size: file.size, sha256: file.sha256, s3Key: key });
  }
  return verified;
}

export async function closeUpload(db: Db, uploadId: string): Promise<void> {
  await db.update(uploadSessions).set({ completedAt: sql`now()` }).where(eq(uploadSessions.id, uploadId));
}

/**
 * Deletes upload sessions that expired unfinished, with any uploaded object or multipart
 * upload that no finished upload recorded as a blob. Runs before each new upload, a few
 * sessions at a time, so no timer process is needed.
 */
export async function removeAbandonedUploads(db: Db, batch = 20): Promise<number> {
  const expired = await db.select({ id: uploadSessions.id, files: uploadSessions.files }).from(uploadSessions)
    .where(and(isNull(uploadSessions.completedAt), lt(uploadSessions.expiresAt, sql`now()`))).limit(batch);
  for (const session of expired) {
    const hashes = session.files.map((file) => file.sha256);
    const recorded = hashes.length === 0 ? [] : await db.select({ sha256: blobs.sha256, s3Key: blobs.s3Key }).from(blobs).where(inArray(blobs.sha256, hashes));
    const recordedKeys = new Set(recorded.map((row) => row.s3Key));
    let deleted = 0;
    for (const file of session.files) {
      const key = file.key ?? blobKey(file.sha256);
      if (recordedKeys.has(key)) continue;
      if (file.multipartId) await abortMultipartUpload(key, file.multipartId);
      await deleteObject(key);
      deleted += 1;
    }
    await db.delete(uploadSessions).where(eq(uploadSessions.id, session.id));
    logger.info({ uploadId: session.id, deleted }, 'abandoned upload removed');
  }
  return expired.length;
}
