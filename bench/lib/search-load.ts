/**
 * The search benchmark's request mix and its two load generators: autocannon against the
 * tRPC endpoint, and a `pg` pool running the SQL that searchAdapters issues for the same
 * requests. Both cycle through the mix in the same order from a counter shared by all
 * connections, so each measures the same requests in the same proportions.
 */
import autocannon from 'autocannon';
import { drizzle } from 'drizzle-orm/node-postgres';
import type pg from 'pg';
import * as schema from '../../drizzle/schema';
import type { Db } from '../../server/db';
import { searchAdapters, searchInput, type SearchInput } from '../../server/services/search';
import { anonymousReader } from '../../server/services/visibility';
import { BASE_MODELS } from './base-models';
import { DATASETS, DOMAINS, RANKS, Rng, TASKS, type Vocabulary } from './search-data';
import { summarize, type LatencySummary } from './stats';

export interface MixItem {
  // Request kind, e.g. "text+filters/relevance" or "page2/downloads".
  shape: string;
  input: Record<string, unknown>;
  // GET path of the tRPC query (httpLink form: the input as JSON in `input`).
  path: string;
  // The SQL and parameters that searchAdapters sends to Postgres for this input.
  sql: string;
  params: unknown[];
}

const SORTS = ['recent', 'downloads', 'likes', 'score'] as const;
const LICENSE_FILTERS = ['apache-2.0', 'mit', 'cc-by-4.0', 'cc-by-nc-4.0', 'llama3.1', 'gpl-3.0'];

function searchPath(input: Record<string, unknown>): string {
  return `/api/trpc/adapters.search?input=${encodeURIComponent(JSON.stringify(input))}`;
}

/** Picks 0-`max` filters among base model, domain, rank and license. */
function randomFilters(rng: Rng, min: number, max: number): Record<string, unknown> {
  const all: [string, () => unknown][] = [
    ['baseModelId', () => rng.weighted(BASE_MODELS.map((model) => [model.id, model.weight] as const))],
    ['domain', () => rng.weighted(DOMAINS.map(([name, weight]) => [name, weight] as const))],
    ['rank', () => rng.weighted(RANKS)],
    ['license', () => rng.pick(LICENSE_FILTERS)],
  ];
  const count = rng.int(min, max);
  const filters: Record<string, unknown> = {};
  while (Object.keys(filters).length < count) {
    const [key, value] = rng.pick(all);
    if (!(key in filters)) filters[key] = value();
  }
  return filters;
}

/** Returns a text query as users type them: a common word, a rare word, two words, or part of a name. */
function randomQuery(rng: Rng, vocabulary: Vocabulary): string {
  const domainTerms = rng.weighted(DOMAINS.map(([, weight, terms]) => [terms, weight] as const));
  switch (rng.weighted([['common', 30], ['rare', 20], ['two-words', 25], ['name', 25]] as const)) {
    case 'common': return rng.chance(0.5) ? rng.pick(domainTerms.slice(0, 8)) : rng.pick(TASKS);
    // Ranks 20 to 2,000 of the long tail: from a few hundred matching model cards down to a handful.
    case 'rare': return vocabulary.rareWords[rng.int(20, 2000)]!;
    case 'two-words': return `${rng.pick(domainTerms)} ${rng.pick(TASKS)}`;
    default: {
      const dataset = rng.pick(DATASETS);
      // Names are searched by substring and trigram similarity, so include shortened and joined forms.
      return rng.pick([dataset, dataset.replace(/-/g, ''), dataset.slice(0, Math.max(4, dataset.length - 2)), `${rng.pick(['qwen', 'llama', 'smollm2', 'mistral'])} ${dataset}`]);
    }
  }
}

/**
 * Builds `size` requests: text queries with and without filters (relevance order, some with
 * an explicit sort), filters alone with each sort, and second pages through `nextCursor`.
 * `firstPage` fetches page 1 of a request so its cursor can be used.
 */
export async function buildMix(rng: Rng, vocabulary: Vocabulary, size: number, firstPage: (input: Record<string, unknown>) => Promise<string | null>): Promise<Omit<MixItem, 'sql' | 'params'>[]> {
  const items: Omit<MixItem, 'sql' | 'params'>[] = [];
  while (items.length < size) {
    const kind = rng.weighted([['text', 15], ['text+filters', 20], ['text+sort', 5], ['filters', 40], ['page2', 20]] as const);
    let input: Record<string, unknown>;
    let shape: string;
    if (kind === 'text') {
      input = { query: randomQuery(rng, vocabulary), limit: 24 };
      shape = 'text/relevance';
    } else if (kind === 'text+filters') {
      input = { query: randomQuery(rng, vocabulary), ...randomFilters(rng, 1, 2), limit: 24 };
      shape = 'text+filters/relevance';
    } else if (kind === 'text+sort') {
      const sort = rng.pick(SORTS);
      input = { query: randomQuery(rng, vocabulary), ...randomFilters(rng, 0, 1), sort, limit: 24 };
      shape = `text/${sort}`;
    } else if (kind === 'filters') {
      const sort = rng.pick(SORTS);
      input = { ...randomFilters(rng, 0, 3), sort, limit: 24 };
      shape = `filters/${sort}`;
    } else {
      const sort = rng.weighted([['recent', 1], ['downloads', 1], ['likes', 1], ['score', 1], ['relevance', 1]] as const);
      const first = sort === 'relevance'
        ? { query: randomQuery(rng, vocabulary), ...randomFilters(rng, 0, 1), limit: 24 }
        : { ...randomFilters(rng, 0, 2), sort, limit: 24 };
      const cursor = await firstPage(first);
      // A first page without a next page has no second page to ask for.
      if (!cursor) continue;
      input = { ...first, cursor };
      shape = `page2/${sort}`;
    }
    items.push({ shape, input, path: searchPath(input) });
  }
  return items;
}

/**
 * Records the SQL and parameters that searchAdapters sends for each request, through
 * drizzle's query logger. The client underneath returns no rows for every query, so capturing
 * costs nothing however slow the query is. The baseline then runs exactly the endpoint's
 * statements.
 */
export async function captureSql(items: Omit<MixItem, 'sql' | 'params'>[]): Promise<MixItem[]> {
  let last: { sql: string; params: unknown[] } | null = null;
  const noRows = { query: async () => ({ rows: [], fields: [], rowCount: 0, command: 'SELECT' }) };
  const db = drizzle({ client: noRows as unknown as pg.Pool, schema, logger: { logQuery: (query, params) => { last = { sql: query, params }; } } }) as unknown as Db;
  const captured: MixItem[] = [];
  for (const item of items) {
    last = null;
    // The endpoint serves the load anonymously, so the captured SQL has the public-only condition.
    await searchAdapters(db, anonymousReader(db), searchInput.parse(item.input) as SearchInput);
    if (!last) throw new Error(`searchAdapters issued no query for ${item.path}`);
    captured.push({ ...item, ...(last as { sql: string; params: unknown[] }) });
  }
  return captured;
}

export interface LoadResult {
  seconds: number;
  requests: number;
  requestsPerSecond: number;
  latency: LatencySummary;
  errors: number;
  non2xx?: number;
  byShape?: Record<string, LatencySummary>;
  autocannon?: { p50: number; p99: number; mean: number; requestsPerSecondMean: number };
}

/** Runs autocannon with `connections` connections for `seconds`, cycling through the mix. */
export async function runEndpointLoad(url: string, items: MixItem[], connections: number, seconds: number): Promise<LoadResult> {
  let next = 0;
  const latencies: number[] = [];
  let non2xx = 0;
  let errors = 0;
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon({
      url,
      connections,
      duration: seconds,
      timeout: 60,
      requests: [{ method: 'GET', setupRequest: (request) => ({ ...request, path: items[next++ % items.length]!.path }) }],
    }, (error, finished) => (error ? reject(error) : resolve(finished)));
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      latencies.push(responseTime);
      if (statusCode < 200 || statusCode >= 300) non2xx += 1;
    });
    instance.on('reqError', () => {
      errors += 1;
    });
  });
  const elapsed = (result.finish.getTime() - result.start.getTime()) / 1000;
  return {
    seconds: elapsed,
    requests: latencies.length,
    requestsPerSecond: Math.round((latencies.length / elapsed) * 10) / 10,
    latency: summarize(latencies),
    errors: errors + result.errors,
    non2xx,
    autocannon: { p50: result.latency.p50, p99: result.latency.p99, mean: result.latency.average, requestsPerSecondMean: result.requests.average },
  };
}

/**
 * Runs the captured SQL on `connections` pooled connections for `seconds`, cycling through the
 * mix. A failed query (such as one cancelled by statement_timeout) counts as an error and
 * still records its latency, as a 500 response does on the endpoint side.
 */
export async function runSqlLoad(pool: pg.Pool, items: MixItem[], connections: number, seconds: number): Promise<LoadResult & { slowestItem: number }> {
  let next = 0;
  let errors = 0;
  const latencies: number[] = [];
  const byShape = new Map<string, number[]>();
  let slowestItem = 0;
  let slowestMs = -1;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const worker = async () => {
    while (performance.now() < deadline) {
      const index = next++ % items.length;
      const item = items[index]!;
      const begin = performance.now();
      try {
        // drizzle's node-postgres driver reads rows as arrays; so does the baseline.
        await pool.query({ text: item.sql, values: item.params, rowMode: 'array' });
      } catch (error) {
        errors += 1;
        if (errors <= 3) console.error(`baseline query failed (${item.shape}): ${(error as Error).message}`);
      }
      const elapsed = performance.now() - begin;
      latencies.push(elapsed);
      if (elapsed > slowestMs) [slowestItem, slowestMs] = [index, elapsed];
      let list = byShape.get(item.shape);
      if (!list) byShape.set(item.shape, (list = []));
      list.push(elapsed);
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  const elapsed = (performance.now() - started) / 1000;
  return {
    seconds: elapsed,
    requests: latencies.length,
    requestsPerSecond: Math.round((latencies.length / elapsed) * 10) / 10,
    latency: summarize(latencies),
    errors,
    byShape: Object.fromEntries([...byShape.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([shape, list]) => [shape, summarize(list)])),
    slowestItem,
  };
}

/**
 * Sends every request of the mix once from a single client, to the endpoint and as bare SQL
 * in turn: latencies without queueing, so the difference is the app's own cost per request.
 */
export async function runSequential(url: string, pool: pg.Pool, items: MixItem[]): Promise<{ endpoint: Record<string, LatencySummary>; sql: Record<string, LatencySummary>; endpointAll: LatencySummary; sqlAll: LatencySummary }> {
  const endpoint = new Map<string, number[]>();
  const sql = new Map<string, number[]>();
  const push = (map: Map<string, number[]>, shape: string, value: number) => {
    let list = map.get(shape);
    if (!list) map.set(shape, (list = []));
    list.push(value);
  };
  for (const item of items) {
    let begin = performance.now();
    const response = await fetch(url + item.path);
    await response.arrayBuffer();
    if (!response.ok) throw new Error(`search returned HTTP ${response.status} for ${item.path}`);
    push(endpoint, item.shape, performance.now() - begin);
    begin = performance.now();
    await pool.query({ text: item.sql, values: item.params, rowMode: 'array' });
    push(sql, item.shape, performance.now() - begin);
  }
  const bySummary = (map: Map<string, number[]>) => Object.fromEntries([...map.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([shape, list]) => [shape, summarize(list)]));
  return { endpoint: bySummary(endpoint), sql: bySummary(sql), endpointAll: summarize([...endpoint.values()].flat()), sqlAll: summarize([...sql.values()].flat()) };
}
