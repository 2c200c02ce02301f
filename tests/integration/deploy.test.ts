import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { afterAll, describe, expect, it, vi } from 'vitest';
import * as schema from '@/drizzle/schema';
import { METRICS_NAMESPACE, QUEUE_METRICS } from '@/infra/lib/names';
import { pendingMigrations, type Db } from '@/server/db';
import { appSettings, appUrl, testEnv } from '../setup/env';
import { adminClient } from '../setup/helpers';

describe('cloud readiness', () => {
  it('security headers on pages and API', async () => {
    for (const route of ['/', '/signin', '/api/health']) {
      const response = await fetch(`${appUrl}${route}`);
      const csp = response.headers.get('content-security-policy') ?? '';
      expect(csp, route).toContain("default-src 'self'");
      expect(csp, route).toContain("frame-ancestors 'none'");
      expect(csp, route).toContain("object-src 'none'");
      // Browsers PUT uploads straight to S3.
      expect(csp, route).toContain(`connect-src 'self' ${new URL(testEnv.S3_ENDPOINT).origin}`);
      expect(response.headers.get('strict-transport-security'), route).toMatch(/^max-age=\d+/);
      expect(response.headers.get('x-content-type-options'), route).toBe('nosniff');
      expect(response.headers.get('x-frame-options'), route).toBe('DENY');
      expect(response.headers.get('referrer-policy'), route).toBe('strict-origin-when-cross-origin');
      expect(response.headers.get('x-powered-by'), route).toBeNull();
    }
  });

  it('cookies are not Secure over loopback http', async () => {
    // NEXTAUTH_URL is http://127.0.0.1 here; with an https URL next-auth sets Secure, __Host- cookies.
    const response = await fetch(`${appUrl}/api/auth/csrf`);
    const cookie = response.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/^next-auth\.csrf-token=/);
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).not.toMatch(/;\s*Secure/i);
  });

  it('readiness reports settings and migrations', async () => {
    const response = await fetch(`${appUrl}/api/ready`);
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(await response.json()).toEqual({ ready: true, checks: { settings: 'ok', database: 'ok', migrations: 'ok' } });
  });

  it('metrics need a runner token', async () => {
    expect((await fetch(`${appUrl}/api/metrics`)).status).toBe(401);
    expect((await fetch(`${appUrl}/api/metrics`, { headers: { authorization: 'Bearer amr_unknown-token' } })).status).toBe(401);
    const apiToken = (await fs.promises.readFile('.test-data/admin-token', 'utf8')).trim();
    expect((await fetch(`${appUrl}/api/metrics`, { headers: { authorization: `Bearer ${apiToken}` } })).status).toBe(401);

    const { token } = await (await adminClient()).runner.createToken.mutate({ name: 'metrics-reader' });
    const response = await fetch(`${appUrl}/api/metrics`, { headers: { authorization: `Bearer ${token}` } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    const value = (name: string) => Number(text.match(new RegExp(`^${name} (\\d+)$`, 'm'))?.[1]);
    expect(value('adapters_jobs_backlog')).toBe(value('adapters_jobs_queued') + value('adapters_jobs_running'));
  });
});

/** Starts the production build on a free port with `env` and returns its exit code and output. */
async function startApp(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const child = spawn(path.resolve('node_modules/.bin/next'), ['start', '-p', '0', '-H', '127.0.0.1'], {
    env: { PATH: process.env.PATH!, HOME: os.tmpdir(), NEXT_TELEMETRY_DISABLED: '1', NODE_ENV: 'production', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearTimeout(timer);
  return { code, output };
}

describe('start-up validation', () => {
  const valid = appSettings('https://adapters.example.com');

  it('invalid settings stop the server', async () => {
    const { code, output } = await startApp({ ...valid, NEXTAUTH_URL: 'http://adapters.example.com', NEXTAUTH_SECRET: 'short' });
    expect(code).toBe(1);
    expect(output).toContain('server start failed');
    expect(output).toContain('NEXTAUTH_URL must use https in production');
    expect(output).toContain('NEXTAUTH_SECRET must be at least 16 characters');
  });

  it('S3 origin outside the CSP stops the server', async () => {
    const { code, output } = await startApp({ ...valid, S3_ENDPOINT: 'https://s3.us-east-1.amazonaws.com' });
    expect(code).toBe(1);
    expect(output).toContain('rebuild with S3_ENDPOINT=https://s3.us-east-1.amazonaws.com');
  });
});

describe('operations function bundle', () => {
  const databaseUrl = (() => {
    const url = new URL(testEnv.DATABASE_URL);
    url.pathname = `${url.pathname}_ops`;
    return url.toString();
  })();
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ops-bundle-'));

  afterAll(async () => {
    await pool.end();
    fs.rmSync(outDir, { recursive: true, force: true });
  });

  it('migrates a fresh database and publishes queue metrics', async () => {
    const reset = spawnSync(process.execPath, ['scripts/reset-database.mjs', databaseUrl], { encoding: 'utf8' });
    expect(reset.status, reset.stderr).toBe(0);
    const build = spawnSync(process.execPath, ['infra/build-ops.mjs', outDir], { encoding: 'utf8' });
    expect(build.status, build.stderr).toBe(0);

    const db = drizzle(pool, { schema }) as unknown as Db;
    const all = JSON.parse(fs.readFileSync('drizzle/migrations/meta/_journal.json', 'utf8')).entries.map((entry: { tag: string }) => entry.tag);
    expect(await pendingMigrations(db)).toEqual(all);

    // The bundle reads DATABASE_URL at call time, as it would after loading its secret.
    vi.stubEnv('DATABASE_URL', databaseUrl);
    vi.stubEnv('STAGE', 'test');
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      const { handler } = await import(path.join(outDir, 'index.mjs'));
      expect(await handler({ RequestType: 'Create' })).toEqual({ PhysicalResourceId: 'database-migrations' });
      expect(await pendingMigrations(db)).toEqual([]);
      // A second deployment with the same migrations changes nothing.
      expect(await handler({ RequestType: 'Update', PhysicalResourceId: 'database-migrations' })).toEqual({ PhysicalResourceId: 'database-migrations' });
      expect(await handler({ RequestType: 'Delete', PhysicalResourceId: 'database-migrations' })).toEqual({ PhysicalResourceId: 'database-migrations' });

      expect(await handler({ action: 'publish-queue-metrics' })).toEqual({ queued: 0, running: 0 });
      const record = JSON.parse(log.mock.calls.at(-1)![0] as string);
      expect(record._aws.CloudWatchMetrics[0].Namespace).toBe(METRICS_NAMESPACE);
      expect(record).toMatchObject({ Stage: 'test', [QUEUE_METRICS.queued]: 0, [QUEUE_METRICS.backlog]: 0 });

      await expect(handler({ action: 'something-else' })).rejects.toThrow(/unknown event/);
    } finally {
      log.mockRestore();
      vi.unstubAllEnvs();
    }
  });
});
