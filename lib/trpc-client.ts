import { createTRPCClient, httpBatchLink, httpLink, retryLink, splitLink } from '@trpc/client';
import type { AppRouter } from '@/server/api/root';

export type { AppRouter };

export interface ClientOptions {
  // Base URL of the app, e.g. http://127.0.0.1:3000
  url: string;
  // An API token (amk_…) or runner token (amr_…); omit for anonymous reads.
  token?: string;
  // Retries of queries on network errors and 5xx responses.
  retries?: number;
  fetch?: typeof fetch;
}

/**
 * Creates a typed client of the app's tRPC API. Queries are retried with backoff on
 * network errors and 5xx responses; mutations are not, since they may not be idempotent.
 */
export function createClient(options: ClientOptions) {
  const headers = () => (options.token ? { authorization: `Bearer ${options.token}` } : {});
  const url = `${options.url.replace(/\/$/, '')}/api/trpc`;
  return createTRPCClient<AppRouter>({
    links: [
      retryLink({
        retry: ({ op, error, attempts }) => {
          if (op.type !== 'query' || attempts > (options.retries ?? 3)) return false;
          const status = error.data?.httpStatus;
          return status === undefined || status >= 500;
        },
        retryDelayMs: (attempt) => Math.min(10_000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2),
      }),
      splitLink({
        condition: (op) => op.type === 'query',
        true: httpBatchLink({ url, headers, fetch: options.fetch }),
        false: httpLink({ url, headers, fetch: options.fetch }),
      }),
    ],
  });
}

export type Client = ReturnType<typeof createClient>;
