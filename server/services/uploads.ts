import { and, eq, gt, inArray, isNull, lt, sql } from 'drizzle-orm';
import { z } from 'zod';
import { blobs, uploadSessions } from '@/drizzle/schema';
import type { Db } from '../db';
import { blobKey, deleteObject, hashObject, headObject, presignPut } from '../storage';
import { logger } from '../logger';
import { badRequest, notFound } from './errors';

export const PICKLE_EXTENSIONS = ['.bin', '.pt', '.pth', '.ckpt', '.pkl', '.pickle'];

export const uploadFile = z.object({
  path: z.string().min(1).max(200).regex(/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/, 'file paths use letters, digits, dot, dash, underscore and /').refine((p) => !p.split('/').includes('..'), 'file paths may not contain ..'),
  size: z.number().int().nonnegative().max(50 * 1024 ** 3),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'sha256 must be 64 lowercase hex digits'),
});
export type UploadFile = z.infer<typeof uploadFile>;

export interface VerifiedFile extends UploadFile {
  s3Key: string;
}

// An upload session left unfinished this long can no longer be finalized.
const SESSION_SECONDS = 24 * 3600;

/** Rejects pickle checkpoints before any byte is uploaded: they can run code when loaded. */
export function rejectPickles(files: UploadFile[]): void {
  const pickle = files.find((file) => PICKLE_EXTENSIONS.some((ext) => file.path.toLowerCase().endsWith(ext)));
  if (pickle) {
    throw badRequest(`${pickle.path} is a pickle file, which is never loaded here because unpickling can run arbitrary code; convert it with \`PeftModel.from_pretrained(...).save_pretrained(dir, safe_serialization=True)\` and upload adapter_model.safetensors`);
  }
}

/**
 * Opens an upload: returns a presigned PUT per file, or null for content already in the
 * store (files are stored once per sha256).
 */
export async function beginUpload(db: Db, input: { userId: string | null; purpose: typeof uploadSessions.$inferInsert.purpose; files: UploadFile[] }) {
  const paths = new Set<string>();
  for (const file of input.files) {
    if (paths.has(file.path)) throw badRequest(`file ${file.path} is listed twice`);
    paths.add(file.path);
  }

  await removeAbandonedUploads(db);
  const known = input.files.length === 0 ? [] : await db.select({ sha256: blobs.sha256 }).from(blobs).where(inArray(blobs.sha256, input.files.map((f) => f.sha256)));
  const stored = new Set(known.map((row) => row.sha256));

  const [session] = await db.insert(uploadSessions).values({
    userId: input.userId,
    purpose: input.purpose,
    files: input.files,
    expiresAt: sql`now() + make_interval(secs => ${SESSION_SECONDS})`,
  }).returning({ id: uploadSessions.id });

  const files = await Promise.all(input.files.map(async (file) => ({
    path: file.path,
    url: stored.has(file.sha256) ? null : await presignPut(blobKey(file.sha256), file.size, file.sha256),
  })));
  return { uploadId: session!.id, files };
}

/**
 * Checks that every announced file is in the store with its size and sha256, records
 * the blobs, and closes the session. Nothing becomes visible unless every file passes.
 */
export async function finishUpload(db: Db, uploadId: string, userId: string | null, purpose: string): Promise<VerifiedFile[]> {
  const [session] = await db.select().from(uploadSessions).where(and(
    eq(uploadSessions.id, uploadId),
    userId ? eq(uploadSessions.userId, userId) : isNull(uploadSessions.userId),
    isNull(uploadSessions.completedAt),
    gt(uploadSessions.expiresAt, sql`now()`),
  )).limit(1);
  if (!session || session.purpose !== purpose) throw notFound(`open ${purpose} upload ${uploadId}`);

  return verifyFiles(db, session.files);
}

/** Checks each file is in the store with the announced size and sha256, and records its blob. */
export async function verifyFiles(db: Db, files: UploadFile[]): Promise<VerifiedFile[]> {
  const verified: VerifiedFile[] = [];
  for (const file of files) {
    const key = blobKey(file.sha256);
    const size = await headObject(key);
    if (size === null) throw badRequest(`file ${file.path} was not uploaded; PUT it to its presigned URL, then finalize again`);
    if (size !== file.size) throw badRequest(`file ${file.path} has ${size} bytes in storage but ${file.size} were announced; upload it again`);

    const [existing] = await db.select({ sha256: blobs.sha256 }).from(blobs).where(eq(blobs.sha256, file.sha256)).limit(1);
    if (!existing) {
      // The presigned PUT carried the sha256, but not every S3 store checks it: hash once here.
      const actual = await hashObject(key);
      if (actual !== file.sha256) throw badRequest(`file ${file.path} has sha256 ${actual} in storage but ${file.sha256} was announced; upload it again`);
      await db.insert(blobs).values({ sha256: file.sha256, size: file.size, s3Key: key }).onConflictDoNothing();
    }
    verified.push({ ...file, s3Key: key });
  }
  return verified;
}

export async function closeUpload(db: Db, uploadId: string): Promise<void> {
  await db.update(uploadSessions).set({ completedAt: sql`now()` }).where(eq(uploadSessions.id, uploadId));
}

/**
 * Deletes upload sessions that expired unfinished, with any uploaded object that no finished
 * upload recorded as a blob. Runs before each new upload, a few sessions at a time, so no
 * timer process is needed.
 */
export async function removeAbandonedUploads(db: Db, batch = 20): Promise<number> {
  const expired = await db.select({ id: uploadSessions.id, files: uploadSessions.files }).from(uploadSessions)
    .where(and(isNull(uploadSessions.completedAt), lt(uploadSessions.expiresAt, sql`now()`))).limit(batch);
  for (const session of expired) {
    const hashes = session.files.map((file) => file.sha256);
    const recorded = hashes.length === 0 ? [] : await db.select({ sha256: blobs.sha256 }).from(blobs).where(inArray(blobs.sha256, hashes));
    const recordedHashes = new Set(recorded.map((row) => row.sha256));
    for (const sha256 of hashes) {
      if (!recordedHashes.has(sha256)) await deleteObject(blobKey(sha256));
    }
    await db.delete(uploadSessions).where(eq(uploadSessions.id, session.id));
    logger.info({ uploadId: session.id, deleted: hashes.length - recordedHashes.size }, 'abandoned upload removed');
  }
  return expired.length;
}
