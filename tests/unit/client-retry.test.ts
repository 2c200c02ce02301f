import { TRPCClientError } from '@trpc/client';
import { describe, expect, it } from 'vitest';
import { backoffMs, HttpStatusError, neverSent, shouldRetry } from '@/packages/client/retry';

function networkError(code: string): Error {
  // What undici's fetch throws: a TypeError whose cause carries the socket error code.
  return new TypeError('fetch failed', { cause: Object.assign(new Error(code), { code }) });
}

const query = { type: 'query', path: 'adapters.search' };
const mutation = { type: 'mutation', path: 'teams.create' };
const idempotent = { type: 'mutation', path: 'adapters.like' };

describe('client retry policy', () => {
  it('retries queries on transient failures', () => {
    expect(shouldRetry(query, TRPCClientError.from(networkError('ECONNRESET')), 1, 3)).toBe(true);
    expect(shouldRetry(query, TRPCClientError.from(new HttpStatusError(503, 'x', null)), 1, 3)).toBe(true);
    expect(shouldRetry(query, TRPCClientError.from(new HttpStatusError(429, 'x', 2)), 1, 3)).toBe(true);
    expect(shouldRetry(query, TRPCClientError.from(new HttpStatusError(503, 'x', null)), 4, 3)).toBe(false);
  });

  it('sends mutations again only when unsent', () => {
    expect(neverSent(TRPCClientError.from(networkError('ECONNREFUSED')))).toBe(true);
    expect(shouldRetry(mutation, TRPCClientError.from(networkError('ECONNREFUSED')), 1, 3)).toBe(true);
    expect(shouldRetry(mutation, TRPCClientError.from(networkError('ECONNRESET')), 1, 3)).toBe(false);
    expect(shouldRetry(mutation, TRPCClientError.from(new HttpStatusError(503, 'x', null)), 1, 3)).toBe(false);
    expect(shouldRetry(idempotent, TRPCClientError.from(new HttpStatusError(503, 'x', null)), 1, 3)).toBe(true);
  });

  it('backoff doubles within jitter bounds', () => {
    for (const attempt of [1, 2, 3, 8]) {
      const ceiling = Math.min(1000, 100 * 2 ** (attempt - 1));
      const wait = backoffMs(attempt, 100, 1000);
      expect(wait).toBeGreaterThanOrEqual(ceiling / 2);
      expect(wait).toBeLessThanOrEqual(ceiling);
    }
  });
});
