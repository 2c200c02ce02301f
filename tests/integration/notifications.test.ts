import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { users } from '@/drizzle/schema';
import { createCaller } from '@/server/api/root';
import { createContext } from '@/server/api/trpc';
import { getDb } from '@/server/db';
import { getEnv } from '@/server/env';
import { isBlockedAddress } from '@/server/services/webhook-address';
import { uploadDataset } from '../../scripts/seed-lib';
import { TINY_BASE_ID } from '../setup/env';
import { newUser, tinyHyperparameters, waitFor } from '../setup/helpers';

interface Received { headers: http.IncomingHttpHeaders; body: string; status: number }

/** Starts a webhook receiver on loopback that responds 500 to the first request and 200 afterwards. */
function startReceiver() {
  const received: Received[] = [];
  const server = http.createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => { body += chunk; });
    request.on('end', () => {
      const status = received.length === 0 ? 500 : 200;
      received.push({ headers: request.headers, body, status });
      response.writeHead(status, { 'content-type': 'text/plain' });
      response.end(status === 500 ? 'receiver not ready' : 'ok');
    });
  });
  return { server, received };
}

/** Verifies a delivery's signature as a receiver would: HMAC-SHA256 over `timestamp.body`. */
function signatureValid(secret: string, request: Received): boolean {
  const timestamp = String(request.headers['x-webhook-timestamp']);
  const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(`${timestamp}.${request.body}`).digest('hex')}`);
  const actual = Buffer.from(String(request.headers['x-webhook-signature']));
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

describe('job end notifications and webhooks', () => {
  const receiver = startReceiver();
  let url = '';

  beforeAll(async () => {
    await new Promise<void>((resolve) => receiver.server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(receiver.server.address() as AddressInfo).port}/hooks/jobs`;
  });

  afterAll(async () => {
    await new Promise((resolve) => receiver.server.close(resolve));
  });

  it('delivers a signed webhook, retrying after a 500', async () => {
    const user = await newUser('hooked');
    const { secret } = await user.client.webhooks.set.mutate({ url });
    expect(secret).toMatch(/^whsec_/);
    expect(JSON.stringify(await user.client.webhooks.get.query())).not.toContain(secret);

    // Cancelling a queued fine-tune ends it at once, without a runner.
    const dataset = await uploadDataset(user.client, '.test-data/demo/pubmedqa-train.jsonl', 'pubmedqa-train', TINY_BASE_ID);
    const { jobId } = await user.client.finetune.create.mutate({
      datasetVersionId: dataset.datasetVersionId, baseModelId: TINY_BASE_ID, adapterName: 'announced', domain: null, description: '', evalLimit: null,
      hyperparameters: tinyHyperparameters(),
    });
    await user.client.finetune.cancel.mutate({ jobId });

    await waitFor('the webhook retry', async () => receiver.received.length >= 2, 30_000, 100);
    const [first, second] = receiver.received;
    expect(first!.status).toBe(500);
    expect(second!.status).toBe(200);
    expect(second!.headers['x-webhook-delivery']).toBe(first!.headers['x-webhook-delivery']);
    expect(signatureValid(secret, first!)).toBe(true);
    expect(signatureValid(secret, second!)).toBe(true);
    expect(signatureValid('whsec_wrong', second!)).toBe(false);

    const payload = JSON.parse(second!.body);
    expect(payload.event).toBe('job.ended');
    expect(payload.state).toBe('cancelled');
    expect(payload.job).toMatchObject({ id: jobId, kind: 'finetune', namespace: user.namespace, name: 'announced' });
    expect(payload.adapterVersion).toBeNull();

    const hook = await waitFor('the delivery log to show the success', async () => {
      const found = await user.client.webhooks.get.query();
      return found?.deliveries[0]?.state === 'delivered' ? found : null;
    }, 10_000, 100);
    expect(hook.deliveries).toHaveLength(1);
    expect(hook.deliveries[0]!.attempts.map((attempt) => attempt.status)).toEqual([500, 200]);
    expect(hook.deliveries[0]!.attempts[0]!.error).toBe('receiver not ready');
  });

  it('notifies the job starter and marks as read', async () => {
    const user = await newUser('notified');
    const dataset = await uploadDataset(user.client, '.test-data/demo/pubmedqa-train.jsonl', 'pubmedqa-train', TINY_BASE_ID);
    const { jobId } = await user.client.finetune.create.mutate({
      datasetVersionId: dataset.datasetVersionId, baseModelId: TINY_BASE_ID, adapterName: 'noticed', domain: null, description: '', evalLimit: null,
      hyperparameters: tinyHyperparameters(),
    });
    expect((await user.client.notifications.list.query()).unread).toBe(0);
    await user.client.finetune.cancel.mutate({ jobId });

    const list = await user.client.notifications.list.query();
    expect(list.unread).toBe(1);
    expect(list.items).toHaveLength(1);
    expect(list.items[0]).toMatchObject({ jobId, state: 'cancelled', message: 'Fine-tune noticed was cancelled', readAt: null });

    const stranger = await newUser('bystander');
    expect((await stranger.client.notifications.list.query()).unread).toBe(0);
    expect(await stranger.client.notifications.markRead.mutate({ ids: [list.items[0]!.id] })).toEqual({ marked: 0 });

    expect(await user.client.notifications.markRead.mutate({ ids: [list.items[0]!.id] })).toEqual({ marked: 1 });
    const after = await user.client.notifications.list.query();
    expect(after.unread).toBe(0);
    expect(after.items[0]!.readAt).not.toBeNull();
  });
});

describe('webhook address check', () => {
  it('rejects private addresses without the setting', async () => {
    // The app under test allows loopback; this process runs the same router without the setting.
    expect(getEnv().WEBHOOK_ALLOW_PRIVATE).toBe(false);
    const user = await newUser('ssrf');
    const db = await getDb();
    const [row] = await db.select({ id: users.id }).from(users).where(eq(users.email, user.email));
    const caller = createCaller(await createContext({ sessionUserId: row!.id }));

    const cases: [string, RegExp][] = [
      ['http://127.0.0.1:9/hook', /resolves to 127\.0\.0\.1, a private, loopback, link-local or metadata address.*WEBHOOK_ALLOW_PRIVATE=1/],
      ['http://169.254.169.254/latest/meta-data', /resolves to 169\.254\.169\.254/],
      ['http://10.1.2.3/hook', /resolves to 10\.1\.2\.3/],
      ['http://[::ffff:192.168.0.1]/hook', /resolves to ::ffff:c0a8:1/],
      ['http://localhost:9/hook', /webhook host localhost resolves to/],
      ['ftp://example.com/hook', /uses ftp:; use http:\/\/ or https:\/\//],
      ['not a url', /"not a url" is not a valid URL/],
    ];
    for (const [url, message] of cases) await expect(caller.webhooks.set({ url }), url).rejects.toThrow(message);
    expect(await caller.webhooks.get()).toBeNull();
  });

  it('classifies addresses by range', () => {
    const table: [string, boolean][] = [
      ['127.0.0.1', true], ['10.0.0.1', true], ['172.16.5.4', true], ['172.32.0.1', false], ['192.168.1.1', true],
      ['169.254.169.254', true], ['100.64.0.1', true], ['0.0.0.0', true], ['8.8.8.8', false], ['93.184.215.14', false],
      ['::1', true], ['fe80::1', true], ['fd00:ec2::254', true], ['::ffff:127.0.0.1', true], ['::ffff:7f00:1', true], ['::ffff:808:808', false], ['2606:4700::1111', false],
    ];
    for (const [address, blocked] of table) expect(isBlockedAddress(address), address).toBe(blocked);
  });
});
