import { and, eq, gt, inArray, isNull, lt, sql } from 'drizzle-orm';
import { createSHA256, type IHasher } from 'hash-wasm';
import { z } from 'zod';
import { blobs, uploadSessions, type SessionFile, type UploadVerification } from '@/drizzle/schema';
import {
  MAX_PART_SIZE, MAX_PARTS, MAX_SINGLE_PUT, MIN_PART_SIZE, partCount, partRange, type UploadTarget, type VerifyingUpload,
} from '@/lib/upload-protocol';
import type { Db } from '../db';
import { getEnv } from '../env';
import {
  abortMultipartUpload, blobKey, completeMultipartUpload, createMultipartUpload, deleteObject, getRangeStream, hashObject, headObject,
  listParts, presignPut, presignUploadPart,
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

/** Limits of one finalize call's sha256 work: it stops at whichever comes first. */
export interface VerifyBudget {
  seconds: number;
  bytes: number;
}

function verifyBudget(): VerifyBudget {
  const env = getEnv();
  return { seconds: env.UPLOAD_VERIFY_SECONDS, bytes: env.UPLOAD_VERIFY_BYTES };
}

/**
 * Checks that every announced file is in the store with its size and sha256 and records the
 * blobs. Hashing a large file takes longer than one request may run, so each call hashes
 * within `budget` and returns the progress until every file is verified; the caller (the
 * client) calls again with the same upload. Nothing becomes visible unless every file passes.
 */
export async function finishUpload(db: Db, uploadId: string, userId: string | null, purpose: string, budget = verifyBudget()): Promise<VerifiedFile[] | VerifyingUpload> {
  const session = await openSession(db, uploadId, userId, purpose);
  const progress = await hashSessionFiles(db, session, budget);
  if (progress) return progress;
  // Every file now has its blob, so this only looks the blobs up.
  return verifyFiles(db, session.files);
}

type UploadSession = typeof uploadSessions.$inferSelect;

/** Returns the sha256 values of `files` that have a blob row. */
async function recordedHashes(db: Db, files: SessionFile[]): Promise<Set<string>> {
  const hashes = files.map((file) => file.sha256);
  const rows = hashes.length === 0 ? [] : await db.select({ sha256: blobs.sha256 }).from(blobs).where(inArray(blobs.sha256, hashes));
  return new Set(rows.map((row) => row.sha256));
}

/**
 * Hashes the session's files that have no blob yet, in order, continuing from the state that
 * an earlier call stored. Records each file whose hash matches. Returns the progress when the
 * budget ran out first, or null when every file is verified.
 */
async function hashSessionFiles(db: Db, session: UploadSession, budget: VerifyBudget): Promise<VerifyingUpload | null> {
  const deadline = Date.now() + budget.seconds * 1000;
  let bytesLeft = budget.bytes;
  const totalBytes = session.files.reduce((sum, file) => sum + file.size, 0);
  const recorded = await recordedHashes(db, session.files);
  // The state this call last read or wrote; every write is a compare-and-set against it.
  let state = session.verification;
  let bytesVerified = 0;

  for (const file of session.files) {
    if (recorded.has(file.sha256)) {
      bytesVerified += file.size;
      continue;
    }
    const resume = state?.path === file.path ? state : null;
    if (!resume && (bytesLeft <= 0 || Date.now() >= deadline)) return { status: 'verifying', bytesVerified, totalBytes };
    const key = await checkStoredFile(file);

    // A call that hashed the last bytes stores the digest before recording the blob, so a
    // call that finds it (the first one ran out of time, or runs concurrently) hashes nothing.
    let actual = resume?.sha256 ?? null;
    if (actual === null) {
      const hasher = await createSHA256();
      if (resume) hasher.load(Buffer.from(resume.sha256State!, 'base64'));
      else hasher.init();
      const start = resume?.offset ?? 0;
      const offset = start + await hashRange(key, hasher, start, Math.min(file.size, start + bytesLeft), deadline);
      bytesLeft -= offset - start;

      const round = (state?.round ?? 0) + 1;
      const finished = offset === file.size;
      const next: UploadVerification = finished
        ? { round, path: file.path, offset, sha256State: null, sha256: hasher.digest('hex') }
        : { round, path: file.path, offset, sha256State: Buffer.from(hasher.save()).toString('base64'), sha256: null };
      if (!(await saveVerification(db, session.id, state, next))) {
        // Another finalize call of this upload saved its state first; this call's work is dropped.
        return progressOf(db, session, totalBytes);
      }
      state = next;
      if (!finished) return { status: 'verifying', bytesVerified: bytesVerified + offset, totalBytes };
      actual = next.sha256!;
    }

    if (actual !== file.sha256) {
      // The object has a key of its own (multipart), so deleting it never touches a good blob.
      if (file.key) await deleteObject(file.key);
      throw badRequest(`file ${file.path} has sha256 ${actual} in storage but ${file.sha256} was announced; upload it again`);
    }
    await recordBlob(db, file, key);
    bytesVerified += file.size;
    logger.info({ uploadId: session.id, path: file.path, size: file.size }, 'uploaded file verified');
  }
  return null;
}

/**
 * Feeds bytes [start, end) of an object to `hasher`, stopping early once `deadline` (epoch ms)
 * has passed; returns the number of bytes hashed, at least one chunk's worth when end > start.
 */
async function hashRange(key: string, hasher: IHasher, start: number, end: number, deadline: number): Promise<number> {
  if (end <= start) return 0;
  const stream = await getRangeStream(key, start, end);
  let hashed = 0;
  try {
    for await (const chunk of stream) {
      const bytes = chunk as Buffer;
      if (hashed + bytes.length > end - start) throw new Error(`S3 returned more than the ${end - start} bytes requested from ${key} at offset ${start}`);
      hasher.update(bytes);
      hashed += bytes.length;
      if (Date.now() >= deadline) break;
    }
  } finally {
    stream.destroy();
  }
  if (hashed < end - start && Date.now() < deadline) {
    throw new Error(`S3 returned ${hashed} of the ${end - start} bytes requested from ${key} at offset ${start}`);
  }
  return hashed;
}

/** Writes `next` if the stored state is still `previous` (same round); returns whether it did. */
async function saveVerification(db: Db, uploadId: string, previous: UploadVerification | null, next: UploadVerification): Promise<boolean> {
  const unchanged = previous ? sql`(${uploadSessions.verification}->>'round')::int = ${previous.round}` : isNull(uploadSessions.verification);
  const rows = await db.update(uploadSessions).set({ verification: next }).where(and(eq(uploadSessions.id, uploadId), unchanged)).returning({ id: uploadSessions.id });
  return rows.length === 1;
}

/** Returns the progress as stored: files with a blob, plus the hashed bytes of the current file. */
async function progressOf(db: Db, session: UploadSession, totalBytes: number): Promise<VerifyingUpload> {
  const [row] = await db.select({ verification: uploadSessions.verification }).from(uploadSessions).where(eq(uploadSessions.id, session.id)).limit(1);
  const recorded = await recordedHashes(db, session.files);
  const done = session.files.filter((file) => recorded.has(file.sha256)).reduce((sum, file) => sum + file.size, 0);
  const current = session.files.find((file) => file.path === row?.verification?.path);
  const partial = current && !recorded.has(current.sha256) ? row!.verification!.offset : 0;
  return { status: 'verifying', bytesVerified: done + partial, totalBytes };
}

/**
 * Joins a multipart file after checking that every part arrived with its announced size.
 * The store checked each part's sha256 on arrival, because each part URL was signed with it.
 */
async function completeParts(file: SessionFile): Promise<void> {
  if (await headObject(file.key!) === file.size) return; // completed by an earlier finalize
  const uploaded = await listParts(file.key!, file.multipartId!);
  if (uploaded === null) {
    // A concurrent finalize call of the same upload may have joined the parts since the HEAD.
    if (await headObject(file.key!) === file.size) return;
    throw badRequest(`the multipart upload of ${file.path} no longer exists; begin a new upload`);
  }
  const byNumber = new Map(uploaded.map((part) => [part.partNumber, part]));
  const joined = [];
  for (const [i, sha256] of file.parts!.entries()) {
    const partNumber = i + 1;
    const [start, end] = partRange(file.size, file.partSize!, partNumber);
    const part = byNumber.get(partNumber);
    let problem: string | null = null;
    if (!part) problem = `file ${file.path}: part ${partNumber} of ${file.parts!.length} was not uploaded; resume the upload and send it`;
    else if (part.size !== end - start) problem = `file ${file.path}: part ${partNumber} has ${part.size} bytes in storage but should have ${end - start}; resume the upload to send it again`;
    else if (part.sha256 !== null && part.sha256 !== sha256) problem = `file ${file.path}: part ${partNumber} has sha256 ${part.sha256} in storage but ${sha256} was announced; resume the upload`;
    if (problem) {
      // A concurrent finalize may be joining the parts, which empties the part list before the
      // joined object appears. It gets up to 1 s before the part counts as missing.
      for (let attempt = 0; attempt < 5; attempt++) {
        if (await headObject(file.key!) === file.size) return;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      throw badRequest(problem);
    }
    joined.push({ partNumber, etag: part!.etag, sha256 });
  }
  try {
    await completeMultipartUpload(file.key!, file.multipartId!, joined);
  } catch (error) {
    if (await headObject(file.key!) === file.size) return;
    throw error;
  }
}

/** Joins a multipart file if needed and checks that its object has the announced size; returns its key. */
async function checkStoredFile(file: SessionFile): Promise<string> {
  if (file.multipartId) await completeParts(file);
  const key = file.key ?? blobKey(file.sha256);
  const size = await headObject(key);
  if (size === null) throw badRequest(`file ${file.path} was not uploaded; PUT it to its presigned URL, then finalize again`);
  if (size !== file.size) throw badRequest(`file ${file.path} has ${size} bytes in storage but ${file.size} were announced; upload it again`);
  return key;
}

/** Records a verified object as the blob of its sha256; returns the key of the copy that is kept. */
async function recordBlob(db: Db, file: SessionFile, key: string): Promise<string> {
  const [recorded] = await db.insert(blobs).values({ sha256: file.sha256, size: file.size, s3Key: key }).onConflictDoNothing().returning({ s3Key: blobs.s3Key });
  if (recorded) return key;
  // Another upload of the same content finished first; keep its copy. The key is compared
  // because a concurrent call for this same upload may have recorded this very object.
  const kept = await blobObjectKey(db, file.sha256);
  if (file.key && kept !== file.key) await deleteObject(file.key);
  return kept;
}

/**
 * Checks each file is in the store with the announced size and sha256, and records its blob.
 * It hashes every file without a blob in full, in this call: runner outputs use it, and
 * finishUpload only after hashSessionFiles has recorded every file.
 */
export async function verifyFiles(db: Db, files: SessionFile[]): Promise<VerifiedFile[]> {
  const verified: VerifiedFile[] = [];
  for (const file of files) {
    const [existing] = await db.select({ s3Key: blobs.s3Key }).from(blobs).where(eq(blobs.sha256, file.sha256)).limit(1);
    if (existing) {
      verified.push({ path: file.path, size: file.size, sha256: file.sha256, s3Key: existing.s3Key });
      continue;
    }

    const key = await checkStoredFile(file);
    // Parts carry their own checksums, and a single PUT is signed with the file's, but the
    // whole file's sha256 is what other uploads trust when they skip this content: hash once.
    const actual = await hashObject(key);
    if (actual !== file.sha256) {
      if (file.key) await deleteObject(file.key);
      throw badRequest(`file ${file.path} has sha256 ${actual} in storage but ${file.sha256} was announced; upload it again`);
    }
    verified.push({ path: file.path, size: file.size, sha256: file.sha256, s3Key: await recordBlob(db, file, key) });
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
