import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { download, upload } from '../../gpu-runner/src/files';
import { headObject, presignGet, presignPut, putObject } from '../../server/storage';
import { testEnv } from '../setup/env';

const WEED_DIR = '.test-data/seaweedfs';

async function stopStorage(): Promise<void> {
  const pid = Number(await fs.readFile(path.join(WEED_DIR, 'weed.pid'), 'utf8'));
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100; i += 1) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`SeaweedFS (pid ${pid}) did not stop`);
}

function startStorage(): void {
  const port = new URL(testEnv.S3_ENDPOINT).port;
  execFileSync('scripts/seaweedfs.sh', [WEED_DIR, port, testEnv.S3_BUCKET, testEnv.S3_ACCESS_KEY_ID, testEnv.S3_SECRET_ACCESS_KEY], { stdio: 'ignore' });
}

describe('runner transfers under faults', () => {
  it('resumes an interrupted download from the bytes it has', async () => {
    const body = randomBytes(3 * 1024 * 1024);
    const sha256 = createHash('sha256').update(body).digest('hex');
    const key = `tests/resume-${sha256}`;
    await putObject(key, body);
    const target = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'resume-')), 'model.safetensors');
    await fs.writeFile(`${target}.partial`, body.subarray(0, 1024 * 1024));

    const result = await download({ path: 'model.safetensors', size: body.length, sha256, url: await presignGet(key) }, target);
    expect(result.resumedFrom).toBe(1024 * 1024);
    expect(createHash('sha256').update(await fs.readFile(target)).digest('hex')).toBe(sha256);
  });

  it('starts over when the partial bytes are corrupt', async () => {
    const body = randomBytes(2 * 1024 * 1024);
    const sha256 = createHash('sha256').update(body).digest('hex');
    const key = `tests/corrupt-${sha256}`;
    await putObject(key, body);
    const target = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'corrupt-')), 'data.jsonl');
    await fs.writeFile(`${target}.partial`, Buffer.alloc(1024, 7));

    const result = await download({ path: 'data.jsonl', size: body.length, sha256, url: await presignGet(key) }, target);
    expect(result.resumedFrom).toBe(0);
    expect((await fs.stat(target)).size).toBe(body.length);
  });

  it('retries an artifact upload while storage is down and succeeds when it returns', async () => {
    const body = randomBytes(256 * 1024);
    const sha256 = createHash('sha256').update(body).digest('hex');
    const key = `tests/upload-${sha256}`;
    const file = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'upload-')), 'adapter_model.safetensors');
    await fs.writeFile(file, body);
    const url = await presignPut(key, body.length, sha256);

    await stopStorage();
    let settled = false;
    const uploading = upload(url, file, body.length).finally(() => {
      settled = true;
    });
    try {
      await new Promise((resolve) => setTimeout(resolve, 2500));
      expect(settled).toBe(false);
    } finally {
      startStorage();
    }
    await uploading;
    expect(await headObject(key)).toBe(body.length);
  }, 90_000);

  it('fails cleanly, naming the file, when storage stays down', async () => {
    const file = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'down-')), 'adapter_config.json');
    await fs.writeFile(file, '{}');
    const url = await presignPut('tests/never', 2, createHash('sha256').update('{}').digest('hex'));
    await stopStorage();
    try {
      await expect(upload(url, file, 2)).rejects.toThrow(/upload of adapter_config\.json failed after 5 attempts/);
    } finally {
      startStorage();
    }
  }, 120_000);
});
