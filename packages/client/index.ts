/**
 * Typed client of the adapter marketplace API. `createClient` returns a tRPC client with the
 * app router's types; `uploadFiles` and `followJob` wrap the multi-call flows of uploads and jobs.
 */
import { createTRPCClient, httpBatchLink, httpLink, retryLink, splitLink, TRPCClientError } from '@trpc/client';
import type { AppRouter } from '@/server/api/root';
import { backoffMs, HttpStatusError, shouldRetry } from './retry';

export type { AppRouter };
export { IDEMPOTENT_MUTATIONS, HttpStatusError, isTransient, neverSent, statusOf } from './retry';
export { uploadFiles, fileSource, type UploadSource, type UploadProgress, type UploadOptions } from './upload';
export { followJob, type JobUpdate, type FollowOptions } from './follow';

export interface ClientOptions {
  // Base URL of the app, e.g. http://127.0.0.1:3000
  url: string;
  // An API token (amk_…) or runner token (amr_…); omit for anonymous reads.
  token?: string;
  // Retries after the first attempt (3 by default); 0 turns retrying off.
  retries?: number;
  // Wait before the first retry in milliseconds (250), doubled per retry up to `maxRetryDelayMs` (10,000).
  retryDelayMs?: number;
  maxRetryDelayMs?: number;
  fetch?: typeof fetch;
}

/**
 * Throws HttpStatusError for a 5xx or 429 response whose body is not JSON (a proxy's error
 * page), so the retry policy gets the status instead of a parse error.
 */
function statusCheckingFetch(inner: typeof fetch): typeof fetch {
  return async (input, init) => {
    const response = await inner(input, init);
    const json = (response.headers.get('content-type') ?? '').includes('application/json');
    if ((response.status >= 500 || response.status === 429) && !json) {
      await response.body?.cancel();
      const retryAfter = Number(response.headers.get('retry-after') ?? Number.NaN);
      throw new HttpStatusError(response.status, String(input instanceof Request ? input.url : input), Number.isFinite(retryAfter) ? retryAfter : null);
    }
    return response;
  };
}

/** Returns the Retry-After of a failed call in milliseconds, or null when it sent none. */
function retryAfterMs(error: unknown): number | null {
  const http = (error as { cause?: unknown }).cause;
  if (http instanceof HttpStatusError && http.retryAfterSeconds !== null) return http.retryAfterSeconds * 1000;
  if (error instanceof TRPCClientError) {
    const header = (error.meta as { response?: Response } | undefined)?.response?.headers?.get('retry-after');
    const seconds = Number(header ?? Number.NaN);
    if (Number.isFinite(seconds)) return seconds * 1000;
  }
  return null;
}

/**
 * Creates a typed client of the app's tRPC API. Queries and the mutations in
 * IDEMPOTENT_MUTATIONS are retried on network errors, 5xx and 429 responses with exponential
 * backoff and jitter (a Retry-After header sets a longer wait). Other mutations are retried
 * only when the connection failed before the request was sent, because the server may have
 * acted on a request whose response was lost.
 */
export function createClient(options: ClientOptions) {
  const headers = () => (options.token ? { authorization: `Bearer ${options.token}` } : {});
  const url = `${options.url.replace(/\/$/, '')}/api/trpc`;
  const fetchImpl = statusCheckingFetch(options.fetch ?? ((input, init) => fetch(input, init)));
  const retries = options.retries ?? 3;
  const baseMs = options.retryDelayMs ?? 250;
  const maxMs = options.maxRetryDelayMs ?? 10_000;
  // retryLink calls retryDelayMs right after retry for the same failure, so the wait a
  // Retry-After header requests is passed in this variable.
  let serverWaitMs: number | null = null;
  return createTRPCClient<AppRouter>({
    links: [
      retryLink({
        retry: ({ op, error, attempts }) => {
          const again = shouldRetry(op, error, attempts, retries);
          serverWaitMs = again ? retryAfterMs(error) : null;
          return again;
        },
        retryDelayMs: (attempt) => Math.max(serverWaitMs ?? 0, backoffMs(attempt, baseMs, maxMs)),
      }),
      splitLink({
        condition: (op) => op.type === 'query',
        true: httpBatchLink({ url, headers, fetch: fetchImpl }),
        false: httpLink({ url, headers, fetch: fetchImpl }),
      }),
    ],
  });
}

export type Client = ReturnType<typeof createClient>;
