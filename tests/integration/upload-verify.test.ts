import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as schema from '@/drizzle/schema';
import { announce, describeFolder, putFiles, type LocalFile } from '../../cli/upload';
import { finalizeUpload, isVerifying, type VerifyingUpload } from '../../lib/upload-protocol';
import type { Db } from '../../server/db';
import { finishUpload } from '../../server/services/uploads';
import { hashObject, headObject } from '../../server/storage';
import { TEST_VERIFY_BYTES, testEnv, TINY_BASE_ID } from '../setup/env';
import { newUser, runCli, writeAdapterFolder } from '../setup/helpers';

// The test app hashes TEST_VERIFY_BYTES per finalize call, so a file of 18 MiB takes at least
// five calls. The odd size leaves a short last part (parts are 16 MiB).
const NOTES_SIZE = 18 * 1024 * 1024 + 12_345;
const NOTES = 'training_notes.txt';

type User = Awaited<ReturnType<typeof newUser>>;

const pool = new pg.Pool({ connectionString: testEnv.DATABASE_URL, max: 4 });
const db = drizzle(pool, { schema }) as unknown as Db;

afterAll(async () => {
  await pool.end();
});

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Writes an adapter folder with a large extra file and uploads it; returns the upload. */
async function uploadWithNotes(user: User, notes: Buffer, declare: (files: LocalFile[]) => void = () => {}) {
  const dir = await writeAdapterFolder();
  await fs.writeFile(path.join(dir, NOTES), notes);
  const files = await describeFolder(dir);
  declare(files);
  const begun = await user.client.adapters.beginUpload.mutate({ files: files.map(announce) });
  await putFiles(files, begun.files);
  return { dir, files, uploadId: begun.uploadId };
}

async function blobRow(sha: string): Promise<{ s3_key: string } | undefined> {
  return (await pool.query<{ s3_key: string }>('select s3_key from blobs where sha256 = $1', [sha])).rows[0];
}

async function verificationOf(uploadId: string): Promise<schema.UploadVerification | null> {
  return (await pool.query<{ verification: schema.UploadVerification | null }>('select verification from upload_sessions where id = $1', [uploadId])).rows[0]!.verification;
}

describe('resumable upload verification', () => {
  let user: User;
  const notes = randomBytes(NOTES_SIZE);

  beforeAll(async () => {
    user = await newUser('verify');
  });

  it('finalize verifies in bounded rounds', async () => {
    const { files, uploadId } = await uploadWithNotes(user, notes);
    const totalBytes = files.reduce((sum, file) => sum + file.size, 0);
    const otherBytes = totalBytes - NOTES_SIZE;
    const publish = () => user.client.adapters.publish.mutate({ uploadId, name: 'verified-notes', baseModelId: TINY_BASE_ID });

    const rounds: VerifyingUpload[] = [];
    let result = await publish();
    while (isVerifying(result)) {
      rounds.push(result);
      if (rounds.length === 1) {
        // The small files come first (sorted by path) and fit in the first call's budget.
        const state = await verificationOf(uploadId);
        expect(state?.path).toBe(NOTES);
        expect(state?.offset).toBe(result.bytesVerified - otherBytes);
        expect(state?.sha256State).toMatch(/^[A-Za-z0-9+/]+=*$/);
        expect(state?.sha256).toBeNull();
      }
      expect(rounds.length, 'finalize made no progress').toBeLessThan(50);
      result = await publish();
    }

    expect(rounds.length).toBeGreaterThanOrEqual(Math.floor(NOTES_SIZE / TEST_VERIFY_BYTES));
    for (const [i, round] of rounds.entries()) {
      expect(round.totalBytes).toBe(totalBytes);
      expect(round.bytesVerified).toBeLessThan(totalBytes);
      if (i === 0) continue;
      const step = round.bytesVerified - rounds[i - 1]!.bytesVerified;
      expect(step).toBeGreaterThan(0);
      expect(step).toBeLessThanOrEqual(TEST_VERIFY_BYTES);
    }
    expect(result.version).toBe(1);

    // The verified object stays at the upload's own key, and its bytes are the notes.
    const blob = await blobRow(sha256(notes));
    expect(blob?.s3_key).toMatch(new RegExp(`^blobs/upload/${uploadId}/`));
    const download = await user.client.adapters.downloadUrl.mutate({ namespace: user.namespace, name: 'verified-notes', path: NOTES });
    expect(sha256(Buffer.from(await (await fetch(download.url)).arrayBuffer()))).toBe(sha256(notes));
  });

  it('wrong declared hash is rejected at the end', async () => {
    // Same bytes as the published notes, announced under another sha256: every part carries
    // its true checksum, so only the whole-file hash can catch it.
    const declared = sha256(Buffer.concat([notes, Buffer.from('x')]));
    const { uploadId } = await uploadWithNotes(user, notes, (files) => {
      files.find((file) => file.path === NOTES)!.sha256 = declared;
    });
    const publish = () => user.client.adapters.publish.mutate({ uploadId, name: 'mislabelled-notes', baseModelId: TINY_BASE_ID });

    let calls = 0;
    await expect((async () => {
      for (;;) {
        calls += 1;
        if (!isVerifying(await publish())) return;
      }
    })()).rejects.toThrow(new RegExp(`${NOTES} has sha256 ${sha256(notes)} in storage but ${declared} was announced; upload it again`));
    expect(calls).toBeGreaterThanOrEqual(Math.floor(NOTES_SIZE / TEST_VERIFY_BYTES));

    expect(await blobRow(declared)).toBeUndefined();
    expect(await headObject(`blobs/upload/${uploadId}/3`)).toBeNull();
    await expect(publish()).rejects.toThrow(/no longer exists; begin a new upload/);
    await expect(user.client.adapters.get.query({ namespace: user.namespace, name: 'mislabelled-notes' })).rejects.toThrow(/not found/i);

    // The good blob of the same bytes is untouched.
    const good = await blobRow(sha256(notes));
    expect(good?.s3_key).toMatch(/^blobs\/upload\//);
    expect(await hashObject(good!.s3_key)).toBe(sha256(notes));
  });

  it('concurrent finalize calls share one state', async () => {
    const other = randomBytes(NOTES_SIZE);
    const { uploadId } = await uploadWithNotes(user, other);
    const [{ user_id: userId }] = (await pool.query<{ user_id: string }>('select user_id from upload_sessions where id = $1', [uploadId])).rows as [{ user_id: string }];
    const budget = { seconds: 60, bytes: TEST_VERIFY_BYTES };

    let rounds = 0;
    for (;;) {
      rounds += 1;
      expect(rounds, 'verification made no progress').toBeLessThan(50);
      const results = await Promise.all([1, 2, 3].map(() => finishUpload(db, uploadId, userId, 'adapter', budget)));
      if (results.every((result) => !isVerifying(result))) break;
    }
    // Three calls per round, yet the bytes are hashed once: the losers of each round drop their work.
    expect(rounds).toBeGreaterThanOrEqual(Math.floor(NOTES_SIZE / TEST_VERIFY_BYTES));
    expect(await verificationOf(uploadId)).toMatchObject({ path: NOTES, offset: NOTES_SIZE, sha256State: null, sha256: sha256(other) });

    const blob = await blobRow(sha256(other));
    expect(blob?.s3_key).toBe(`blobs/upload/${uploadId}/3`);
    expect(await hashObject(blob!.s3_key)).toBe(sha256(other));

    const published = await finalizeUpload(() => user.client.adapters.publish.mutate({ uploadId, name: 'concurrent-notes', baseModelId: TINY_BASE_ID }));
    expect(published.version).toBe(1);
  });

  it('data set over limit rejected before upload', async () => {
    // The test app keeps the default DATASET_MAX_BYTES of 64 MiB.
    const limit = 64 * 1024 * 1024;
    await expect(user.client.datasets.beginUpload.mutate({ file: { path: 'huge.jsonl', size: limit + 1, sha256: 'a'.repeat(64) } }))
      .rejects.toThrow(`huge.jsonl is ${limit + 1} bytes; data sets are limited to ${limit} bytes here`);
    await expect(user.client.datasets.beginUpload.mutate({ file: { path: 'table.xlsx', size: 10, sha256: 'a'.repeat(64) } }))
      .rejects.toThrow('table.xlsx: only JSONL (.jsonl), CSV (.csv) and TSV (.tsv) files are accepted');
  });

  it('CLI publish reports verification progress', async () => {
    const dir = await writeAdapterFolder();
    await fs.writeFile(path.join(dir, NOTES), randomBytes(NOTES_SIZE));
    const run = runCli(['publish', dir, '--name', 'cli-verified', '--base', TINY_BASE_ID], user.token);
    expect(run.status, run.stderr).toBe(0);
    const lines = run.stderr.split('\n').filter((line) => line.startsWith('verifying upload:'));
    expect(lines.length).toBeGreaterThanOrEqual(Math.floor(NOTES_SIZE / TEST_VERIFY_BYTES));
    expect(run.stdout).toContain(`published ${user.namespace}/cli-verified@1`);
  });
});
