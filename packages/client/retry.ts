import { TRPCClientError } from '@trpc/client';

/**
 * Mutations that are safe to send twice: repeating them leaves the same state and returns the
 * same kind of response. The client retries these like queries. Every other mutation is retried
 * only when the connection failed before the request was sent.
 */
export const IDEMPOTENT_MUTATIONS: ReadonlySet<string> = new Set([
  // Counts a download once per client, version and UTC day, however often it is called.
  'adapters.downloadUrl',
  // Sets a like to a given state; repeating it changes nothing.
  'adapters.like',
  // Sets the visibility to a given value.
  'adapters.setVisibility',
  // Lists the parts that arrived and presigns the rest; it changes nothing.
  'uploads.resume',
]);

// Error codes of a connection that failed before any byte of the request left the client.
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

/** An HTTP error response whose body is not a tRPC error, such as a proxy's 502 page. */
export class HttpStatusError extends Error {
  constructor(readonly status: number, readonly url: string, readonly retryAfterSeconds: number | null) {
    super(`HTTP ${status} from ${url}`);
    this.name = 'HttpStatusError';
  }
}

function causes(error: unknown): unknown[] {
  const chain: unknown[] = [];
  let current: unknown = error;
  while (current && chain.length < 5) {
    chain.push(current);
    current = (current as { cause?: unknown }).cause;
  }
  return chain;
}

/** Returns the HTTP status of a failed call, or null when no response arrived. */
export function statusOf(error: unknown): number | null {
  if (error instanceof TRPCClientError) {
    const status = (error.data as { httpStatus?: number } | undefined)?.httpStatus;
    if (typeof status === 'number') return status;
  }
  const http = causes(error).find((cause): cause is HttpStatusError => cause instanceof HttpStatusError);
  return http ? http.status : null;
}

/** Tells whether the request of a failed call never reached the server. */
export function neverSent(error: unknown): boolean {
  return causes(error).some((cause) => NOT_SENT_CODES.has((cause as { code?: string }).code ?? ''));
}

/** Tells whether a call failed on the network or with a status worth another try (5xx, 429). */
export function isTransient(error: unknown): boolean {
  const status = statusOf(error);
  if (status === null) return true;
  return status >= 500 || status === 429;
}

/**
 * Decides whether to repeat a failed call: queries and idempotent mutations on transient
 * failures, other mutations only when their request was never sent.
 */
export function shouldRetry(op: { type: string; path: string }, error: unknown, attempts: number, maxRetries: number): boolean {
  if (attempts > maxRetries) return false;
  if (op.type === 'query' || IDEMPOTENT_MUTATIONS.has(op.path)) return isTransient(error);
  if (op.type === 'mutation') return neverSent(error);
  return false;
}

/**
 * Returns the wait before retry number `attempt` (from 1) in milliseconds: exponential from
 * `baseMs`, capped at `maxMs`, with full jitter over its upper half so clients that failed
 * together do not retry together.
 */
export function backoffMs(attempt: number, baseMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** (attempt - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}
