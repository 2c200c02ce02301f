import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { APP_LOG, APP_USER, appUrl, writeErrors } from '../setup/env';

const isRoot = process.getuid?.() === 0;

/** Runs a file write as the app's user and returns its exit status and error output. */
function writeAsAppUser(file: string): { status: number | null; stderr: string } {
  const result = spawnSync(process.execPath, ['-e', 'require("node:fs").writeFileSync(process.argv[1], "probe")', file], { uid: APP_USER.uid, gid: APP_USER.gid, encoding: 'utf8' });
  return { status: result.status, stderr: result.stderr };
}

describe('read-only working directory', () => {
  // NOTE: enforced only when the tests run as root, as CI does. A non-root run starts the app as
  // the current user, who owns the checkout, so these two checks are skipped.
  it.skipIf(!isRoot)('app runs as the unprivileged user', () => {
    const pid = fs.readFileSync('.test-data/app.pid', 'utf8').trim();
    // `next start` serves from a child process; every process of the app runs as APP_USER.
    const uids = spawnSync('ps', ['-o', 'uid=', '--ppid', pid, '-p', pid], { encoding: 'utf8' }).stdout.trim().split(/\s+/).map(Number);
    expect(uids.length).toBeGreaterThan(0);
    expect(uids.every((uid) => uid === APP_USER.uid)).toBe(true);
  });

  it.skipIf(!isRoot)('app user cannot write the checkout', () => {
    for (const file of ['probe', '.next/probe', '.next/cache/probe', 'drizzle/probe']) {
      const result = writeAsAppUser(path.resolve(file));
      expect(result.status, `${file} was writable`).not.toBe(0);
      expect(result.stderr).toMatch(/EACCES|ENOENT/);
      expect(fs.existsSync(path.resolve(file))).toBe(false);
    }
    const tmp = path.join('/tmp', `app-user-probe-${process.pid}`);
    expect(writeAsAppUser(tmp).status).toBe(0);
    fs.rmSync(tmp);
  });

  it('pages and API answer without writes', async () => {
    for (const route of ['/', '/signin', '/publish', '/leaderboard', '/api/health', '/api/ready']) {
      const response = await fetch(`${appUrl}${route}`);
      expect(response.status, route).toBe(200);
    }
    expect(writeErrors(fs.readFileSync(APP_LOG, 'utf8'))).toEqual([]);
  });
});
