import { TRPCError } from '@trpc/server';
import { and, eq, lt, sql } from 'drizzle-orm';
import { rateLimitCounters } from '@/drizzle/schema';
import type { Db } from './db';

export type LimitKind = 'write' | 'expensive-read';

/** A request over a rate limit; `retryAfterSeconds` is the wait until the window ends. */
export class RateLimited extends Error {
  constructor(readonly retryAfterSeconds: number, readonly limit: number, readonly windowSeconds: number) {
    super(`rate limit of ${limit} requests per ${windowSeconds} s reached; retry after ${retryAfterSeconds} s`);
  }
}

/**
 * Counts one request against `key` in the current fixed window and throws TOO_MANY_REQUESTS
 * (HTTP 429) with a RateLimited cause once the count passes `limit`. The count is one upsert,
 * so every app instance sharing the database shares the limit. A `limit` of 0 counts nothing.
 */
export async function hit(db: Db, key: string, limit: number, windowSeconds: number, now = Date.now()): Promise<void> {
  if (limit <= 0) return;
  const windowMs = windowSeconds * 1000;
  const windowStart = new Date(Math.floor(now / windowMs) * windowMs);
  const [row] = await db.insert(rateLimitCounters).values({ key, windowStart, count: 1 })
    .onConflictDoUpdate({ target: [rateLimitCounters.key, rateLimitCounters.windowStart], set: { count: sql`${rateLimitCounters.count} + 1` } })
    .returning({ count: rateLimitCounters.count });
  // The first request of a window drops the key's older windows, so the table keeps about one
  // row per recent client without a scheduled clean-up.
  if (row!.count === 1) await db.delete(rateLimitCounters).where(and(eq(rateLimitCounters.key, key), lt(rateLimitCounters.windowStart, windowStart)));
  if (row!.count <= limit) return;

  const retryAfterSeconds = Math.max(1, Math.ceil((windowStart.getTime() + windowMs - now) / 1000));
  throw new TRPCError({ code: 'TOO_MANY_REQUESTS', message: `too many requests: the limit is ${limit} per ${windowSeconds} s; retry after ${retryAfterSeconds} s`, cause: new RateLimited(retryAfterSeconds, limit, windowSeconds) });
}

/** Returns the wait in seconds a rate-limited error asks for, or null for any other error. */
export function retryAfterOf(error: unknown): number | null {
  const cause = error instanceof TRPCError ? error.cause : null;
  return cause instanceof RateLimited ? cause.retryAfterSeconds : null;
}
