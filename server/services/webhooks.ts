import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { and, desc, eq, lte, sql } from 'drizzle-orm';
import { webhookDeliveries, webhooks, type WebhookAttempt } from '@/drizzle/schema';
import { getDb, type Db } from '../db';
import { getEnv } from '../env';
import { logger } from '../logger';
import { notFound } from './errors';
import { parseWebhookUrl, resolveWebhookHost } from './webhook-address';

export const SIGNATURE_HEADER = 'x-webhook-signature';
export const TIMESTAMP_HEADER = 'x-webhook-timestamp';
export const DELIVERY_HEADER = 'x-webhook-delivery';

// Deliveries sent per dispatcher pass; the rest wait for the next pass.
const BATCH = 20;
// How often the dispatcher looks for due retries, in milliseconds.
const POLL_MS = 1000;
// Characters of the receiver's response body kept in the delivery log.
const ERROR_CHARS = 200;

function secretKey(): Buffer {
  return Buffer.from(hkdfSync('sha256', getEnv().NEXTAUTH_SECRET, 'adapter-marketplace', 'webhook-secret', 32));
}

/** Encrypts a signing secret with AES-256-GCM; the output is iv.tag.ciphertext in base64url. */
function encryptSecret(secret: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', secretKey(), iv);
  const ciphertext = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
  return [iv, cipher.getAuthTag(), ciphertext].map((part) => part.toString('base64url')).join('.');
}

function decryptSecret(stored: string): string {
  const [iv, tag, ciphertext] = stored.split('.').map((part) => Buffer.from(part, 'base64url'));
  const decipher = createDecipheriv('aes-256-gcm', secretKey(), iv!);
  decipher.setAuthTag(tag!);
  return Buffer.concat([decipher.update(ciphertext!), decipher.final()]).toString('utf8');
}

/**
 * Returns the signature header value for a delivery: `sha256=` and the hex HMAC-SHA256 of
 * `${timestamp}.${body}` under the webhook's secret. Receivers recompute it over the raw body.
 */
export function signPayload(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/**
 * Sets the caller's webhook URL and issues a new signing secret, returned only here. The URL
 * must resolve to public addresses unless WEBHOOK_ALLOW_PRIVATE is set.
 */
export async function setWebhook(db: Db, userId: string, rawUrl: string) {
  const url = parseWebhookUrl(rawUrl);
  await resolveWebhookHost(url.hostname, getEnv().WEBHOOK_ALLOW_PRIVATE);

  const secret = `whsec_${randomBytes(24).toString('base64url')}`;
  const [row] = await db.insert(webhooks).values({ userId, url: url.toString(), secretCiphertext: encryptSecret(secret) })
    .onConflictDoUpdate({ target: webhooks.userId, set: { url: url.toString(), secretCiphertext: encryptSecret(secret), createdAt: sql`now()` } })
    .returning({ id: webhooks.id, url: webhooks.url });
  logger.info({ webhookId: row!.id, userId, host: url.host }, 'webhook set');
  return { id: row!.id, url: row!.url, secret };
}

export async function deleteWebhook(db: Db, userId: string) {
  const [row] = await db.delete(webhooks).where(eq(webhooks.userId, userId)).returning({ id: webhooks.id });
  if (!row) throw notFound('webhook of this user');
  logger.info({ webhookId: row.id, userId }, 'webhook deleted');
  return { deleted: true };
}

/** Returns the caller's webhook (never its secret) and its 50 newest deliveries, or null. */
export async function getWebhook(db: Db, userId: string) {
  const [row] = await db.select({ id: webhooks.id, url: webhooks.url, createdAt: webhooks.createdAt }).from(webhooks).where(eq(webhooks.userId, userId)).limit(1);
  if (!row) return null;
  const deliveries = await db.select({
    id: webhookDeliveries.id, jobId: webhookDeliveries.jobId, event: webhookDeliveries.event, state: webhookDeliveries.state,
    attempts: webhookDeliveries.attempts, nextAttemptAt: webhookDeliveries.nextAttemptAt, createdAt: webhookDeliveries.createdAt,
  }).from(webhookDeliveries).where(eq(webhookDeliveries.webhookId, row.id)).orderBy(desc(webhookDeliveries.createdAt)).limit(50);
  return { ...row, deliveries };
}

/** Queues `payload` for the user's webhook, if they have one; the dispatcher sends it. */
export async function enqueueWebhook(db: Db, input: { userId: string; jobId: string | null; event: string; payload: Record<string, unknown> }) {
  const [hook] = await db.select({ id: webhooks.id }).from(webhooks).where(eq(webhooks.userId, input.userId)).limit(1);
  if (!hook) return false;
  await db.insert(webhookDeliveries).values({ webhookId: hook.id, jobId: input.jobId, event: input.event, payload: input.payload });
  return true;
}

/** Sends one POST with the resolved address pinned, so DNS cannot change between check and connect. */
async function post(url: URL, headers: Record<string, string>, body: string): Promise<{ status: number; text: string }> {
  const env = getEnv();
  const addresses = await resolveWebhookHost(url.hostname, env.WEBHOOK_ALLOW_PRIVATE);
  const pinned: LookupFunction = (_hostname, options, callback) => {
    if ((options as { all?: boolean }).all) callback(null, addresses);
    else callback(null, addresses[0]!.address, addresses[0]!.family);
  };
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const request = client.request(url, {
      method: 'POST', lookup: pinned, timeout: env.WEBHOOK_TIMEOUT_SECONDS * 1000,
      headers: { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'user-agent': 'adapter-marketplace-webhooks' },
    }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => { if (text.length < ERROR_CHARS) text += chunk; });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text: text.slice(0, ERROR_CHARS) }));
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`timed out after ${env.WEBHOOK_TIMEOUT_SECONDS} s without a response`)));
    request.on('error', reject);
    request.end(body);
  });
}

/** Sends one delivery and records the try. A 2xx response delivers it, and anything else schedules a retry. */
async function attemptDelivery(db: Db, delivery: typeof webhookDeliveries.$inferSelect) {
  const env = getEnv();
  const [hook] = await db.select().from(webhooks).where(eq(webhooks.id, delivery.webhookId)).limit(1);
  if (!hook) return;

  const body = JSON.stringify(delivery.payload);
  const timestamp = Math.floor(Date.now() / 1000);
  const headers = {
    [SIGNATURE_HEADER]: signPayload(decryptSecret(hook.secretCiphertext), timestamp, body),
    [TIMESTAMP_HEADER]: String(timestamp),
    [DELIVERY_HEADER]: delivery.id,
  };
  let attempt: WebhookAttempt;
  try {
    const response = await post(new URL(hook.url), headers, body);
    const ok = response.status >= 200 && response.status < 300;
    attempt = { at: new Date().toISOString(), status: response.status, error: ok ? null : response.text || `HTTP ${response.status}` };
  } catch (error) {
    attempt = { at: new Date().toISOString(), status: null, error: (error as Error).message.slice(0, ERROR_CHARS) };
  }

  const attempts = [...delivery.attempts, attempt];
  const delivered = attempt.status !== null && attempt.status >= 200 && attempt.status < 300;
  const exhausted = attempts.length >= env.WEBHOOK_MAX_ATTEMPTS;
  let state: 'delivered' | 'failed' | 'pending' = 'pending';
  if (delivered) state = 'delivered';
  else if (exhausted) state = 'failed';
  const waitSeconds = env.WEBHOOK_RETRY_BASE_SECONDS * 2 ** (attempts.length - 1);
  await db.update(webhookDeliveries).set({
    attempts, state, nextAttemptAt: sql`now() + make_interval(secs => ${waitSeconds})`,
  }).where(eq(webhookDeliveries.id, delivery.id));

  const context = { deliveryId: delivery.id, webhookId: hook.id, jobId: delivery.jobId, attempt: attempts.length, status: attempt.status };
  if (delivered) logger.info(context, 'webhook delivered');
  else if (exhausted) logger.warn({ ...context, error: attempt.error }, 'webhook delivery failed; no attempts left');
  else logger.warn({ ...context, error: attempt.error, retryInSeconds: waitSeconds }, 'webhook delivery failed; will retry');
}

/**
 * Sends every due delivery once. Each is claimed by pushing its next try past the timeout
 * under SKIP LOCKED, so app instances polling together never send one twice at once.
 */
export async function dispatchDueWebhooks(db: Db): Promise<number> {
  const leaseSeconds = getEnv().WEBHOOK_TIMEOUT_SECONDS + 5;
  const claimed = await db.transaction(async (tx) => {
    const due = await tx.select({ id: webhookDeliveries.id }).from(webhookDeliveries)
      .where(and(eq(webhookDeliveries.state, 'pending'), lte(webhookDeliveries.nextAttemptAt, sql`now()`)))
      .orderBy(webhookDeliveries.nextAttemptAt).limit(BATCH).for('update', { skipLocked: true });
    const rows = [];
    for (const { id } of due) {
      const [row] = await tx.update(webhookDeliveries).set({ nextAttemptAt: sql`now() + make_interval(secs => ${leaseSeconds})` })
        .where(eq(webhookDeliveries.id, id)).returning();
      rows.push(row!);
    }
    return rows;
  });
  await Promise.all(claimed.map((delivery) => attemptDelivery(db, delivery).catch((error: unknown) => {
    logger.error({ err: error, deliveryId: delivery.id }, 'webhook delivery crashed; it is retried after its lease');
  })));
  return claimed.length;
}

let running: Promise<void> | null = null;
let again = false;
let timer: NodeJS.Timeout | null = null;

/**
 * Runs a dispatcher pass in the background without awaiting it, so a request that ends a
 * job never waits on a receiver. A pass already running takes one more turn instead.
 */
export function kickWebhookDispatcher(db?: Db): void {
  if (running) {
    again = true;
    return;
  }
  running = (async () => {
    do {
      again = false;
      await dispatchDueWebhooks(db ?? await getDb());
    } while (again);
  })().catch((error: unknown) => logger.error({ err: error }, 'webhook dispatcher pass failed'))
    .finally(() => { running = null; });
}

/**
 * Starts the once-a-second poll that sends retries when they fall due.
 * NOTE: on serverless hosts the process may be frozen between requests, so retries there
 * wait until a later request or job end wakes an instance.
 */
export function startWebhookDispatcher(): void {
  if (timer) return;
  timer = setInterval(() => kickWebhookDispatcher(), POLL_MS);
  timer.unref();
  logger.info({ pollMs: POLL_MS }, 'webhook dispatcher started');
}
