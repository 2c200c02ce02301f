import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkBuildOutput, OPEN_NEXT_REQUIRED } from '@/infra/lib/build-output';
import { announce, describeFolder, putFiles } from '../../cli/upload';
import { finalizeUpload } from '../../lib/upload-protocol';
import { APP_USER, appSettings, appUrl, TINY_BASE_ID, writeErrors } from '../setup/env';
import { newUser, writeAdapterFolder } from '../setup/helpers';

// scripts/test.sh builds it with `npm run build:lambda` before the app.
const OPEN_NEXT_DIR = path.resolve('.open-next');
const SERVER_DIR = path.join(OPEN_NEXT_DIR, 'server-functions', 'default');
// The public host name of the function URL, which the handler receives as the Host header.
const FUNCTION_HOST = 'abcdefghij.lambda-url.us-east-1.on.aws';
const isRoot = process.getuid?.() === 0;

interface LambdaResponse {
  statusCode: number;
  headers: Record<string, string>;
  cookies: string[];
  body: string;
}

/** A function URL event (payload format 2.0) for a GET of `pathAndQuery`. */
function functionUrlEvent(pathAndQuery: string, headers: Record<string, string> = {}) {
  const [rawPath, rawQueryString = ''] = pathAndQuery.split('?');
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString,
    headers: { host: FUNCTION_HOST, 'x-forwarded-proto': 'https', 'x-forwarded-for': '127.0.0.1', accept: '*/*', ...headers },
    requestContext: {
      accountId: 'anonymous',
      apiId: 'abcdefghij',
      domainName: FUNCTION_HOST,
      domainPrefix: 'abcdefghij',
      http: { method: 'GET', path: rawPath, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'lambda-test' },
      requestId: `request-${Date.now()}`,
      routeKey: '$default',
      stage: '$default',
      time: new Date().toUTCString(),
      timeEpoch: Date.now(),
    },
    isBase64Encoded: false,
  };
}

/**
 * Invokes the server function's handler in a fresh Node process with the production settings a
 * Lambda stage has (migrations off, settings from the environment), once per event in order:
 * the first call is the cold start. As root it runs as APP_USER, to whom the bundle is read-only.
 */
function invokeServerFunction(events: object[]): { responses: LambdaResponse[]; stderr: string } {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'lambda-home-'));
  if (isRoot) fs.chownSync(home, APP_USER.uid, APP_USER.gid);
  const result = spawnSync(process.execPath, [path.resolve('tests/setup/lambda-invoke.mjs'), SERVER_DIR], {
    ...(isRoot ? { uid: APP_USER.uid, gid: APP_USER.gid } : {}),
    cwd: SERVER_DIR,
    input: JSON.stringify(events),
    encoding: 'utf8',
    timeout: 60_000,
    env: {
      PATH: process.env.PATH!,
      HOME: home,
      TMPDIR: home,
      NODE_ENV: 'production',
      AWS_LAMBDA_FUNCTION_NAME: 'adapters-test-server',
      AWS_REGION: 'us-east-1',
      ...appSettings(`https://${FUNCTION_HOST}`),
      DATABASE_MIGRATE_ON_START: 'false',
      DATABASE_POOL_MAX: '2',
    },
  });
  fs.rmSync(home, { recursive: true, force: true });
  if (result.status !== 0) throw new Error(`the server function's process exited with ${result.status}:\n${result.stderr}\n${result.stdout}`);
  // pino writes the app's log lines to stdout too; responses are the lines with a statusCode.
  const responses = result.stdout.split('\n').filter((line) => line.startsWith('{"statusCode"')).map((line) => JSON.parse(line) as LambdaResponse);
  return { responses, stderr: `${result.stderr}\n${result.stdout}` };
}

describe('Lambda server function bundle', () => {
  let adapterName: string;
  let namespace: string;

  beforeAll(async () => {
    checkBuildOutput(OPEN_NEXT_DIR, OPEN_NEXT_REQUIRED, 'npm run build:lambda');
    const user = await newUser('lambda');
    namespace = user.namespace;
    adapterName = `lambda-probe-${user.namespace}`;
    const files = await describeFolder(await writeAdapterFolder());
    const begun = await user.client.adapters.beginUpload.mutate({ files: files.map(announce) });
    await putFiles(files, begun.files);
    await finalizeUpload(() => user.client.adapters.publish.mutate({ uploadId: begun.uploadId, name: adapterName, baseModelId: TINY_BASE_ID, description: 'published for the Lambda bundle test' }));
  });

  it('has every folder the stack deploys', () => {
    expect(() => checkBuildOutput(OPEN_NEXT_DIR, OPEN_NEXT_REQUIRED, 'npm run build:lambda')).not.toThrow();
    const manifest = JSON.parse(fs.readFileSync(path.join(OPEN_NEXT_DIR, 'open-next.output.json'), 'utf8'));
    expect(manifest.origins.default).toMatchObject({ bundle: '.open-next/server-functions/default', handler: 'index.handler', streaming: true });
    // No image optimization function is built, so the manifest must not route to one.
    expect(manifest.origins.imageOptimizer).toBeUndefined();
    expect(fs.existsSync(path.join(OPEN_NEXT_DIR, 'image-optimization-function'))).toBe(false);
  });

  it.skipIf(!isRoot)('bundle is read-only to the function user', () => {
    const probe = spawnSync(process.execPath, ['-e', 'require("node:fs").writeFileSync(process.argv[1], "probe")', path.join(SERVER_DIR, 'probe')], { uid: APP_USER.uid, gid: APP_USER.gid, encoding: 'utf8' });
    expect(probe.status).not.toBe(0);
    expect(probe.stderr).toMatch(/EACCES/);
  });

  it('serves health and a tRPC search', async () => {
    const input = encodeURIComponent(JSON.stringify({ query: adapterName, sort: 'relevance' }));
    const { responses, stderr } = invokeServerFunction([
      functionUrlEvent('/api/health'),
      functionUrlEvent('/api/ready'),
      functionUrlEvent(`/api/trpc/adapters.search?input=${input}`),
    ]);
    expect(responses).toHaveLength(3);
    const [health, ready, search] = responses as [LambdaResponse, LambdaResponse, LambdaResponse];

    expect(health.statusCode, health.body).toBe(200);
    expect(JSON.parse(health.body)).toEqual({ ok: true, checks: { database: 'ok', storage: 'ok' } });
    expect(health.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(health.headers['x-content-type-options']).toBe('nosniff');

    expect(ready.statusCode, ready.body).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({ ready: true, checks: { settings: 'ok', database: 'ok', migrations: 'ok' } });

    expect(search.statusCode, search.body).toBe(200);
    const found = JSON.parse(search.body).result.data.items as { namespace: string; name: string; description: string; latestVersion: number }[];
    expect(found.map((item) => `${item.namespace}/${item.name}`)).toContain(`${namespace}/${adapterName}`);
    // The same query through `next start` returns the same page.
    const fromServer = await (await fetch(`${appUrl}/api/trpc/adapters.search?input=${input}`)).json();
    expect(JSON.parse(search.body)).toEqual(fromServer);

    expect(writeErrors(stderr)).toEqual([]);
  });
});
