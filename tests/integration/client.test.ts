import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@adapters/client';
import { appUrl } from '../setup/env';
import { newUser } from '../setup/helpers';

// The real client against the real app through a loopback proxy that fails on purpose.

// Headers that describe the proxy's own connection or the app's encoded body, which fetch
// has already decoded, so they must not be copied.
const HOP_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-encoding', 'content-length', 'host']);

describe('client retries', () => {
  let server: http.Server;
  let proxyUrl = '';
  // The next this many requests get HTTP 503 from the proxy; later ones reach the app.
  let failures = 0;
  const seen: string[] = [];

  beforeAll(async () => {
    server = http.createServer(async (request, response) => {
      seen.push(`${request.method} ${request.url}`);
      if (failures > 0) {
        failures -= 1;
        response.writeHead(503, { 'content-type': 'text/html' }).end('<h1>503 Service Unavailable</h1>');
        return;
      }
      const chunks: Buffer[] = [];
      for await (const chunk of request) chunks.push(chunk as Buffer);
      const headers = Object.fromEntries(Object.entries(request.headers).filter(([name]) => !HOP_HEADERS.has(name)).map(([name, value]) => [name, String(value)]));
      const forwarded = await fetch(`${appUrl}${request.url}`, { method: request.method, headers, body: chunks.length > 0 ? Buffer.concat(chunks) : undefined });
      const body = Buffer.from(await forwarded.arrayBuffer());
      const responseHeaders = Object.fromEntries([...forwarded.headers].filter(([name]) => !HOP_HEADERS.has(name)));
      response.writeHead(forwarded.status, responseHeaders).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxyUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('retries a query through two 503s', async () => {
    const client = createClient({ url: proxyUrl, retryDelayMs: 20 });
    failures = 2;
    seen.length = 0;
    const page = await client.adapters.search.query({ limit: 1 });
    expect(Array.isArray(page.items)).toBe(true);
    expect(seen.length).toBe(3);
  });

  it('gives up after the retry budget', async () => {
    const client = createClient({ url: proxyUrl, retryDelayMs: 20, retries: 1 });
    failures = 3;
    seen.length = 0;
    await expect(client.adapters.search.query({ limit: 1 })).rejects.toThrow(/HTTP 503/);
    expect(seen.length).toBe(2);
    failures = 0;
  });

  it('sends a plain mutation once', async () => {
    const user = await newUser('client-retry');
    const client = createClient({ url: proxyUrl, token: user.token, retryDelayMs: 20 });
    failures = 2;
    seen.length = 0;
    await expect(client.teams.create.mutate({ name: `${user.namespace}-team` })).rejects.toThrow(/HTTP 503/);
    expect(seen.length).toBe(1);
    failures = 0;
  });

  it('retries an idempotent mutation', async () => {
    const owner = await newUser('client-retry-owner');
    const viewer = await newUser('client-retry-viewer');
    const team = `${owner.namespace}-team`;
    await owner.client.teams.create.mutate({ name: team });
    const client = createClient({ url: proxyUrl, token: viewer.token, retryDelayMs: 20 });
    failures = 2;
    seen.length = 0;
    // An unknown adapter: the third attempt reaches the app, which returns NOT_FOUND once.
    await expect(client.adapters.like.mutate({ namespace: team, name: 'missing', liked: true })).rejects.toThrow(/not found/);
    expect(seen.length).toBe(3);
  });
});
