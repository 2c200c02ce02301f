import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createClient } from '../../lib/trpc-client';
import { writeDemoData, toJsonl, pubmedqaSplits } from '../../scripts/demo-data';
import { ensureUser, PUBMEDQA_TASK, registerBaseModelFromFolder, registerTaskFromFile } from '../../scripts/seed-lib';
import { ADMIN, APP_LOG, APP_USER, appSettings, appUrl, TEST_VERIFY_BYTES, testEnv, TINY_BASE_ID, writeErrors } from './env';

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
 *
 * When the tests run as root, the app runs as the unprivileged APP_USER. To that user the
 * root-owned checkout is read-only, so any write outside /tmp fails as it would on Lambda.
 */
export default async function setup() {
  const logFile = await fs.open(path.resolve(APP_LOG), 'w');
  const user = process.getuid?.() === 0 ? APP_USER : undefined;
  // The unprivileged user's home (/nonexistent for nobody) is replaced by a folder under /tmp.
  const home = await fs.mkdtemp(path.join(os.tmpdir(), 'app-home-'));
  if (user) await fs.chown(home, user.uid, user.gid);
  app = spawn(path.resolve('node_modules/.bin/next'), ['start', '-p', String(testEnv.APP_PORT), '-H', '127.0.0.1'], {
    ...(user ? { uid: user.uid, gid: user.gid } : {}),
    env: {
      ...process.env,
      HOME: home,
      NEXT_TELEMETRY_DISABLED: '1',
      NODE_ENV: 'production',
      ...appSettings(appUrl),
      // Short leases, so a killed runner loses its job within seconds in the crash test.
      JOB_LEASE_SECONDS: '6',
      // The webhook test's receiver listens on loopback, and its retry should come within a second.
      WEBHOOK_ALLOW_PRIVATE: '1',
      WEBHOOK_RETRY_BASE_SECONDS: '0.2',
      UPLOAD_VERIFY_BYTES: String(TEST_VERIFY_BYTES),
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', logFile.fd, logFile.fd],
  });
  await fs.writeFile(path.resolve('.test-data/app.pid'), String(app.pid));
  await waitForHealth(60_000);

  const anonymous = createClient({ url: appUrl });
  const { token } = await ensureUser(anonymous, ADMIN, { admin: true });
  const admin = createClient({ url: appUrl, token });
  await registerBaseModelFromFolder(admin, path.resolve(testEnv.TINY_MODEL_DIR), TINY_BASE_ID, 'Tiny random Llama (tests)', {
    // A queued graph export would be claimed by whichever test's runner comes first.
    exportPlaygroundGraph: false,
  });

  const { task } = await pubmedqaSplits();
  const taskFile = path.resolve('.test-data/pubmedqa-task-40.jsonl');
  await fs.writeFile(taskFile, toJsonl(task.slice(0, 40)));
  await registerTaskFromFile(admin, taskFile, PUBMEDQA_TASK);
  await writeDemoData(path.resolve('.test-data/demo'));

  await fs.writeFile(path.resolve('.test-data/admin-token'), token);

  return async () => {
    app?.kill('SIGTERM');
    await logFile.close();
    const writes = writeErrors(await fs.readFile(path.resolve(APP_LOG), 'utf8'));
    if (writes.length > 0) throw new Error(`the app tried to write outside /tmp:\n${writes.join('\n')}`);
  };
}
