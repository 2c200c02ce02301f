import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { download, upload } from '../../gpu-runner/src/files';
import { headObject, presignGet, presignPut, putObject } from '../../server/storage';
import { appSettings, testEnv, TINY_BASE_ID } from '../setup/env';
import { newUser, shortDataset, startExtraApp, startRunner, stopExtraApp, tinyHyperparameters, waitFor, waitForJob, waitForRunnerLog, type RunnerProcess } from '../setup/helpers';

const WEED_DIR = '.test-data/seaweedfs';

async function stopStorage(): Promise<void> {
  const pid = Number(await fs.readFile(path.join(WEED_DIR, 'weed.pid'), 'utf8'));
  // SIGTERM first; a SeaweedFS that takes longer than 10 s to shut down gets SIGKILL.
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    try {
      process.kill(pid, signal);
    } catch {
      return;
    }
    for (let i = 0; i < 100; i += 1) {
      if (!(await running(pid))) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`SeaweedFS (pid ${pid}) did not stop, even after SIGKILL`);
}

/** Tells whether a process is alive; an exited one its parent has not reaped yet (state Z) is not. */
async function running(pid: number): Promise<boolean> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (stat === null) return false;
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
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

describe('app outage during a job', () => {
  it('keeps training while the app is down and reports when it returns', async () => {
    const port = testEnv.APP_PORT + 7;
    const secondUrl = `http://127.0.0.1:${port}`;
    // The lease outlasts the outage below plus a restart.
    let second = startExtraApp(port, { JOB_LEASE_SECONDS: '60' });
    // The app that responds must be the one started here, because a leftover process on the
    // port would keep serving the runner through the outage.
    const healthy = () => waitFor('the second app', async () => {
      if (second.exitCode !== null) throw new Error(`the second app exited with code ${second.exitCode}; is port ${port} taken by another process?`);
      return (await fetch(`${secondUrl}/api/health`).catch(() => null))?.ok ?? false;
    }, 60_000);
    const user = await newUser('outage');
    const dataset = await shortDataset(user.client, 'outage');
    const { jobId } = await user.client.finetune.create.mutate({
      datasetVersionId: dataset.datasetVersionId, baseModelId: TINY_BASE_ID, adapterName: 'outlived', domain: null, description: '', evalLimit: null,
      hyperparameters: tinyHyperparameters({ maxSteps: 500, epochs: 100 }),
    });

    let runner: RunnerProcess | null = null;
    try {
      await healthy();
      // The first checkpoint's log line shows that training is under way within milliseconds.
      // The job's events reach the app up to a second later, when a fast CPU may be near the end.
      runner = await startRunner('outage-runner', { APP_URL: secondUrl, RUNNER_CHECKPOINT_STEPS: '25' });
      await waitForRunnerLog(runner, 'checkpoint uploaded');

      await stopExtraApp(second);
      // Event reports (every second) and heartbeats go unanswered; the worker goes on training.
      await new Promise((resolve) => setTimeout(resolve, 10_000));
      expect(runner.child.exitCode).toBeNull();
      second = startExtraApp(port, { JOB_LEASE_SECONDS: '60' });
      await healthy();

      const job = await waitForJob(user.client, jobId, ['succeeded', 'failed', 'cancelled'], 280_000);
      expect(job.state).toBe('succeeded');
      expect(job.attempts).toBe(1);
      expect((job.summary as { steps: number }).steps).toBe(500);
      // The runner noticed the outage: reports, heartbeats or the completion were retried.
      expect(runner.output.join('')).toMatch(/event report failed; will retry|heartbeat failed; retrying|retrying while the lease lasts/);
    } finally {
      await runner?.stop();
      await stopExtraApp(second);
    }
  }, 300_000);
});
