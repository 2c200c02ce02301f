import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv } from '../setup/env';
import { newUser, startExtraApp, stopExtraApp, waitFor } from '../setup/helpers';

// An app of its own with small limits over the shared database, called over HTTP with fetch.
const port = testEnv.APP_PORT + 11;
const url = `http://127.0.0.1:${port}`;
const WINDOW_SECONDS = 60;
let app: ReturnType<typeof startExtraApp>;

/** Sends one tRPC mutation (a bad sign-up that fails validation) as `address`, optionally with a token. */
function write(address: string, token?: string): Promise<Response> {
  return fetch(`${url}/api/trpc/auth.signUp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': address, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ email: 'not-an-email' }),
  });
}

function search(address: string): Promise<Response> {
  return fetch(`${url}/api/trpc/adapters.search?input=${encodeURIComponent(JSON.stringify({}))}`, { headers: { 'x-forwarded-for': address } });
}

beforeAll(async () => {
  app = startExtraApp(port, {
    RATE_LIMIT_WINDOW_SECONDS: String(WINDOW_SECONDS), RATE_LIMIT_WRITES: '3', RATE_LIMIT_EXPENSIVE_READS: '2',
    RATE_LIMIT_ADDRESS_WRITES: '5', RATE_LIMIT_ADDRESS_EXPENSIVE_READS: '100',
  });
  await waitFor('the rate-limited app', async () => (await fetch(`${url}/api/health`).catch(() => null))?.ok ?? false, 60_000);
});

afterAll(async () => {
  await stopExtraApp(app);
});

/** Returns the status codes of `count` sequential requests. */
async function statuses(count: number, send: () => Promise<Response>): Promise<number[]> {
  const codes: number[] = [];
  for (let i = 0; i < count; i++) codes.push((await send()).status);
  return codes;
}

describe('rate limits', () => {
  it('answers 429 with Retry-After', async () => {
    // Addresses are unique per run, so that windows left by an earlier run do not count.
    const address = `198.51.100.${Date.now() % 250}`;
    expect(await statuses(3, () => write(address))).toEqual([400, 400, 400]);
    const limited = await write(address);
    expect(limited.status).toBe(429);
    const retryAfter = Number(limited.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(WINDOW_SECONDS);
    expect((await limited.json()).error.message).toMatch(/too many requests: the limit is 3 per 60 s; retry after \d+ s/);
  });

  it('counts tokens and addresses apart', async () => {
    const address = `203.0.113.${Date.now() % 250}`;
    const first = await newUser('limited');
    const second = await newUser('limited');
    // Each token has its own budget of 3 writes, but the address allows 5 in all.
    expect(await statuses(3, () => write(address, first.token))).toEqual([400, 400, 400]);
    expect((await write(address, first.token)).status).toBe(429);
    expect(await statuses(2, () => write(address, second.token))).toEqual([400, 400]);
    expect((await write(address, second.token)).status).toBe(429);
  });

  it('limits expensive reads', async () => {
    const address = `192.0.2.${Date.now() % 250}`;
    expect(await statuses(2, () => search(address))).toEqual([200, 200]);
    const limited = await search(address);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toMatch(/^\d+$/);
    // Cheap reads are not limited.
    expect((await fetch(`${url}/api/trpc/baseModels.list`, { headers: { 'x-forwarded-for': address } })).status).toBe(200);
  });
});
