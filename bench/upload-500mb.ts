/**
 * Upload of a 500 MiB file through the product beside a direct `@aws-sdk/lib-storage` Upload
 * of the same file to the same SeaweedFS, alternating in one run. The product's path is client
 * hashing, beginUpload, presigned multipart PUTs of 16 MiB parts (4 at a time), and the
 * publish call, which verifies the parts and hashes the whole object on the server.
 *
 *   S3_ENDPOINT=http://127.0.0.1:8533 npx next build   (the build fixes the S3 origin of its Content-Security-Policy)
 *   npx tsx bench/upload-500mb.ts [--size-mib 500] [--rounds 3]
 *
 * The app listens on 127.0.0.1:3200 (database `adapters_bench_upload`, recreated each run)
 * and SeaweedFS on 127.0.0.1:8533. The test file lives in a temporary folder that is deleted
 * at the end. Prints a JSON record and writes it to bench/results/upload-500mb-<date>.json.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { DeleteObjectCommand, GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { Readable } from 'node:stream';
import { announce, describeFolder, putFiles, type LocalFile } from '../cli/upload';
import { DEFAULT_PART_SIZE, finalizeUpload } from '../lib/upload-protocol';
import { createClient, type Client } from '../lib/trpc-client';
import { ensureUser } from '../scripts/seed-lib';
import { baseModules, BASE_MODELS, loraTensorTable, registerBenchBaseModel, writeZeroSafetensors } from './lib/base-models';
import { describeMachine, onExit, requireBuild, root, startApp, startSeaweedFs, stopStack } from './lib/stack';

const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '500' },
    rounds: { type: 'string', default: '3' },
  },
});

const PORT = 3200;
const S3_PORT = 8533;
const DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/adapters_bench_upload';
const BIG_FILE = 'training_log.txt';
const MIB = 1024 * 1024;
const workDir = path.join(root, '.data', 'bench-upload');
const log = (message: string) => console.error(`[upload-500mb] ${message}`);

/** Writes `bytes` random bytes in 16 MiB blocks, so the content does not compress or deduplicate. */
async function writeRandomFile(file: string, bytes: number): Promise<void> {
  const handle = await fs.open(file, 'w');
  try {
    for (let written = 0; written < bytes; written += 16 * MIB) await handle.write(randomBytes(Math.min(16 * MIB, bytes - written)));
  } finally {
    await handle.close();
  }
}

/** Overwrites the first bytes with a round marker, so each round uploads new content. */
async function markRound(file: string, round: string): Promise<void> {
  const handle = await fs.open(file, 'r+');
  try {
    await handle.write(Buffer.from(round.padEnd(32, '.').slice(0, 32)), 0, 32, 0);
  } finally {
    await handle.close();
  }
}

function mibPerSecond(bytes: number, seconds: number): number {
  return Math.round((bytes / MIB / seconds) * 10) / 10;
}

async function timed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const begin = performance.now();
  const result = await work();
  return [result, (performance.now() - begin) / 1000];
}

/** Streams an object through sha256 from this process: the same work as the server's finalize hash. */
async function hashStoredObject(s3: S3Client, bucket: string, key: string): Promise<string> {
  const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const hash = createHash('sha256');
  for await (const chunk of out.Body as Readable) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

interface OurRound {
  // describeFolder: sha256 of every file and of each 16 MiB part of the large one, in one read.
  hashSeconds: number;
  beginSeconds: number;
  smallFilesSeconds: number;
  transferSeconds: number;
  finalizeSeconds: number;
  // GET and sha256 of the finished object from the benchmark process: an estimate of the finalize hash.
  rehashSeconds: number;
}

/** Uploads and publishes the adapter folder through the product, timing each step. */
async function uploadOurs(admin: Client, dir: string, round: number, s3: S3Client, bucket: string, pool: pg.Pool): Promise<OurRound> {
  const [files, hashSeconds] = await timed(() => describeFolder(dir));
  const big = files.find((file) => file.path === BIG_FILE)!;
  const [begun, beginSeconds] = await timed(() => admin.adapters.beginUpload.mutate({ files: files.map(announce) }));
  const bigTarget = begun.files.find((target) => target.path === BIG_FILE)!;
  if (bigTarget.done || bigTarget.parts.length === 0) throw new Error(`the store already has ${BIG_FILE}; each round must upload new content`);
  const small: LocalFile[] = files.filter((file) => file !== big);
  const [, smallFilesSeconds] = await timed(() => putFiles(small, begun.files.filter((target) => target.path !== BIG_FILE)));
  const [, transferSeconds] = await timed(() => putFiles([big], [bigTarget]));
  // Finalizing spans several calls when the file exceeds one call's hashing budget; the time covers all of them.
  const [, finalizeSeconds] = await timed(() => finalizeUpload(() => admin.adapters.publish.mutate({ uploadId: begun.uploadId, name: 'upload-bench', baseModelId: BASE_MODELS[0]!.id, description: `Upload benchmark round ${round}` })));

  const { rows: [blob] } = await pool.query<{ s3_key: string }>('select s3_key from blobs where sha256 = $1', [big.sha256]);
  const [rehash, rehashSeconds] = await timed(() => hashStoredObject(s3, bucket, blob!.s3_key));
  if (rehash !== big.sha256) throw new Error(`stored ${BIG_FILE} has sha256 ${rehash}, expected ${big.sha256}`);
  return { hashSeconds, beginSeconds, smallFilesSeconds, transferSeconds, finalizeSeconds, rehashSeconds };
}

/** Uploads the file with lib-storage and deletes it again; without `options` the library's defaults apply. */
async function uploadLibStorage(s3: S3Client, bucket: string, file: string, key: string, options: { partSize?: number; queueSize?: number }): Promise<number> {
  const upload = new Upload({ client: s3, params: { Bucket: bucket, Key: key, Body: createReadStream(file) }, ...options });
  const [, seconds] = await timed(() => upload.done());
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  return seconds;
}

function median(numbers: number[]): number {
  const sorted = [...numbers].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

async function main() {
  await requireBuild();
  const sizeBytes = Number(values['size-mib']) * MIB;
  const rounds = Number(values.rounds);
  await fs.rm(workDir, { recursive: true, force: true });
  await fs.mkdir(workDir, { recursive: true });
  const temp = await fs.mkdtemp(path.join(os.tmpdir(), 'bench-upload-'));
  onExit(() => execFileSync('rm', ['-rf', temp]));

  execFileSync(process.execPath, [path.join(root, 'scripts', 'reset-database.mjs'), DATABASE_URL], { stdio: 'inherit' });
  const s3Settings = startSeaweedFs(path.join(workDir, 'seaweedfs'), S3_PORT, { bucket: 'bench-upload', accessKeyId: 'bench-key', secretAccessKey: 'bench-secret-key' });
  log('starting the app');
  const url = await startApp({
    port: PORT,
    logFile: path.join(workDir, 'app.log'),
    env: {
      DATABASE_URL, S3_ENDPOINT: s3Settings.endpoint, S3_BUCKET: s3Settings.bucket, S3_ACCESS_KEY_ID: s3Settings.accessKeyId,
      S3_SECRET_ACCESS_KEY: s3Settings.secretAccessKey, NEXTAUTH_SECRET: 'bench-secret-not-for-production', LOG_LEVEL: 'warn',
    },
  });
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
  // The SDK's defaults apart from the endpoint: path-style addressing, which SeaweedFS needs.
  const s3 = new S3Client({
    endpoint: s3Settings.endpoint, region: 'us-east-1', forcePathStyle: true,
    credentials: { accessKeyId: s3Settings.accessKeyId, secretAccessKey: s3Settings.secretAccessKey },
  });

  try {
    const { token } = await ensureUser(createClient({ url }), { email: 'bench-upload@example.com', password: 'bench-upload-password', namespace: 'bench' }, { admin: true });
    const admin = createClient({ url, token });
    const base = BASE_MODELS[0]!;
    await registerBenchBaseModel(admin, base, path.join(workDir, 'base-models'));

    const dir = path.join(temp, 'adapter');
    await fs.mkdir(dir);
    await fs.writeFile(path.join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'], base_model_name_or_path: base.hubId, bias: 'none' }, null, 2));
    await writeZeroSafetensors(path.join(dir, 'adapter_model.safetensors'), loraTensorTable(baseModules(base), { rank: 8, targets: ['q_proj', 'v_proj'] }));
    await fs.writeFile(path.join(dir, 'README.md'), `---\nbase_model: ${base.hubId}\nlibrary_name: peft\nlicense: apache-2.0\n---\n# Upload benchmark\n\nCarries a large training log.\n`);
    const bigFile = path.join(dir, BIG_FILE);
    log(`writing a ${values['size-mib']} MiB file of random bytes to ${temp}`);
    await writeRandomFile(bigFile, sizeBytes);

    const ours: OurRound[] = [];
    const libTuned: number[] = [];
    const libDefaults: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      await markRound(bigFile, `round ${round} ${Date.now()}`);
      const result = await uploadOurs(admin, dir, round, s3, s3Settings.bucket, pool);
      ours.push(result);
      log(`round ${round} ours: hash ${result.hashSeconds.toFixed(1)} s, transfer ${result.transferSeconds.toFixed(1)} s, finalize ${result.finalizeSeconds.toFixed(1)} s`);
      libTuned.push(await uploadLibStorage(s3, s3Settings.bucket, bigFile, `lib-storage/tuned-${round}`, { partSize: DEFAULT_PART_SIZE, queueSize: 4 }));
      log(`round ${round} lib-storage, 16 MiB parts, queueSize 4: ${libTuned.at(-1)!.toFixed(1)} s`);
      libDefaults.push(await uploadLibStorage(s3, s3Settings.bucket, bigFile, `lib-storage/defaults-${round}`, {}));
      log(`round ${round} lib-storage defaults: ${libDefaults.at(-1)!.toFixed(1)} s`);
    }

    const medianOf = (pick: (round: OurRound) => number) => median(ours.map(pick));
    const oursTransfer = mibPerSecond(sizeBytes, medianOf((r) => r.transferSeconds));
    const oursEndToEnd = mibPerSecond(sizeBytes, medianOf((r) => r.beginSeconds + r.smallFilesSeconds + r.transferSeconds + r.finalizeSeconds));
    const tuned = mibPerSecond(sizeBytes, median(libTuned));
    const defaults = mibPerSecond(sizeBytes, median(libDefaults));
    const round2 = (value: number) => Math.round(value * 100) / 100;
    const record = {
      date: new Date().toISOString(),
      command: `npx tsx bench/upload-500mb.ts ${process.argv.slice(2).join(' ')}`.trim(),
      machine: await describeMachine(),
      fileBytes: sizeBytes,
      partBytes: DEFAULT_PART_SIZE,
      rounds: ours.map((result, i) => ({
        round: i + 1, ours: result, libStorageTunedSeconds: libTuned[i], libStorageDefaultsSeconds: libDefaults[i],
      })),
      medianMiBPerSecond: {
        oursTransfer, oursTransferAndFinalize: oursEndToEnd, libStorageTuned: tuned, libStorageDefaults: defaults,
        clientHashing: mibPerSecond(sizeBytes, medianOf((r) => r.hashSeconds)),
      },
      medianSeconds: {
        clientHashing: round2(medianOf((r) => r.hashSeconds)), oursBegin: round2(medianOf((r) => r.beginSeconds)),
        oursTransfer: round2(medianOf((r) => r.transferSeconds)), oursFinalize: round2(medianOf((r) => r.finalizeSeconds)),
        rehashFromBenchProcess: round2(medianOf((r) => r.rehashSeconds)), libStorageTuned: round2(median(libTuned)), libStorageDefaults: round2(median(libDefaults)),
      },
      ratios: {
        transferOursToLibStorageTuned: round2(oursTransfer / tuned),
        transferAndFinalizeOursToLibStorageTuned: round2(oursEndToEnd / tuned),
        transferOursToLibStorageDefaults: round2(oursTransfer / defaults),
        transferAndFinalizeOursToLibStorageDefaults: round2(oursEndToEnd / defaults),
      },
    };
    await fs.mkdir(path.join(root, 'bench', 'results'), { recursive: true });
    const out = path.join(root, 'bench', 'results', `upload-500mb-${record.date.slice(0, 10)}.json`);
    await fs.writeFile(out, JSON.stringify(record, null, 2) + '\n');
    console.log(JSON.stringify(record, null, 2));
    log(`wrote ${path.relative(root, out)}`);
  } finally {
    await pool.end();
    s3.destroy();
    stopStack();
    // Every round leaves a 500 MiB object in SeaweedFS; app.log stays for a failed run.
    await fs.rm(path.join(workDir, 'seaweedfs'), { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(`benchmark failed: ${(error as Error).stack ?? (error as Error).message}`);
  stopStack();
  process.exit(1);
});
