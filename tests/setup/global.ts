import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createClient } from '../../lib/trpc-client';
import { writeDemoData, toJsonl, pubmedqaSplits } from '../../scripts/demo-data';
import { ensureUser, PUBMEDQA_TASK, registerBaseModelFromFolder, registerTaskFromFile } from '../../scripts/seed-lib';
import { ADMIN, appUrl, testEnv, TINY_BASE_ID } from './env';

let app: ChildProcess | undefined;

async function waitForHealth(timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${appUrl}/api/health`);
      if (response.ok) return;
      last = await response.text();
    } catch (error) {
      last = (error as Error).message;
    }
    if (app?.exitCode !== null && app?.exitCode !== undefined) throw new Error(`the app exited with code ${app.exitCode}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`the app did not become healthy at ${appUrl}: ${last}`);
}

/**
 * Starts the production build of the app against the test database and SeaweedFS (both
 * started by scripts/test.sh), then registers what every test needs: an admin, the tiny
 * base model and a 40-item PubMedQA task.
 */
export default async function setup() {
  const logFile = await fs.open(path.resolve('.test-data/app.log'), 'w');
  app = spawn(path.resolve('node_modules/.bin/next'), ['start', '-p', String(testEnv.APP_PORT), '-H', '127.0.0.1'], {
    env: {
      ...process.env,
      NODE_ENV: 'production',
      DATABASE_URL: testEnv.DATABASE_URL,
      S3_ENDPOINT: testEnv.S3_ENDPOINT,
      S3_BUCKET: testEnv.S3_BUCKET,
      S3_ACCESS_KEY_ID: testEnv.S3_ACCESS_KEY_ID,
      S3_SECRET_ACCESS_KEY: testEnv.S3_SECRET_ACCESS_KEY,
      NEXTAUTH_SECRET: 'test-secret-for-integration-tests-only',
      NEXTAUTH_URL: appUrl,
      // Short leases, so a killed runner loses its job within seconds in the crash test.
      JOB_LEASE_SECONDS: '6',
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', logFile.fd, logFile.fd],
  });
  await waitForHealth(60_000);

  const anonymous = createClient({ url: appUrl });
  const { token } = await ensureUser(anonymous, ADMIN, { admin: true });
  const admin = createClient({ url: appUrl, token });
  await registerBaseModelFromFolder(admin, path.resolve(testEnv.TINY_MODEL_DIR), TINY_BASE_ID, 'Tiny random Llama (tests)');

  const { task } = await pubmedqaSplits();
  const taskFile = path.resolve('.test-data/pubmedqa-task-40.jsonl');
  await fs.writeFile(taskFile, toJsonl(task.slice(0, 40)));
  await registerTaskFromFile(admin, taskFile, PUBMEDQA_TASK);
  await writeDemoData(path.resolve('.test-data/demo'));

  await fs.writeFile(path.resolve('.test-data/admin-token'), token);

  return async () => {
    app?.kill('SIGTERM');
    await logFile.close();
  };
}
