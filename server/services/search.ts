import { and, desc, eq, inArray, isNotNull, isNull, sql, type SQL } from 'drizzle-orm';
import { z } from 'zod';
import { adapters, namespaces } from '@/drizzle/schema';
import type { Db } from '../db';
import { badRequest } from './errors';
import { readableAdapters, type Reader } from './visibility';

export const adapterSorts = ['relevance', 'recent', 'downloads', 'likes', 'score'] as const;
export type AdapterSort = (typeof adapterSorts)[number];

export const searchFilters = z.object({
  query: z.string().max(200).optional(),
  baseModelId: z.string().max(200).optional(),
  domain: z.string().max(50).optional(),
  taskType: z.string().max(50).optional(),
  rank: z.number().int().positive().max(4096).optional(),
  license: z.string().max(100).optional(),
  peftType: z.string().max(50).optional(),
  tag: z.string().max(64).optional(),
});
export type SearchFilters = z.infer<typeof searchFilters>;

export const searchInput = searchFilters.extend({
  // Without a query, "relevance" falls back to "recent".
  sort: z.enum(adapterSorts).default('relevance'),
  cursor: z.string().max(500).optional(),
  limit: z.number().int().min(1).max(100).default(24),
});
export type SearchInput = z.infer<typeof searchInput>;

// Names closer than this trigram similarity match even without a shared word ("medqa" ~ "med-qa").
// The trigram index serves the `%` operator, which is similarity >= pg_trgm.similarity_threshold
// (0.3 by default; similarity_op in pg_trgm's trgm_op.c). The explicit check keeps 0.3 in a session
// that lowers that setting; a session that raises it finds fewer names.
const NAME_SIMILARITY = 0.3;

function escapeLike(text: string): string {
  return text.replace(/[%_\\]/g, (c) => '\\' + c);
}

/** Conditions for the text query and every filter except `skip` (a facet counts without its own filter). */
function conditions(input: SearchFilters, readable: SQL | undefined, skip?: keyof SearchFilters): SQL[] {
  // A listed adapter is alive, has a version that is not yanked, and the reader may see it.
  const where: SQL[] = [isNotNull(adapters.latestVersion), isNull(adapters.deletedAt)];
  if (readable) where.push(readable);
  const q = input.query?.trim();
  if (q && skip !== 'query') {
    // Every branch has an index (GIN on search_vector, trigram GIN on name), so Postgres can
    // combine them with a BitmapOr. A branch without one would force a scan of every row.
    where.push(sql`(${adapters.searchVector} @@ websearch_to_tsquery('english', ${q})
      or ${adapters.name} ilike ${`%${escapeLike(q)}%`}
      or (${adapters.name} % ${q} and similarity(${adapters.name}, ${q}) >= ${NAME_SIMILARITY}))`);
  }
  if (input.baseModelId && skip !== 'baseModelId') where.push(eq(adapters.baseModelId, input.baseModelId));
  if (input.domain && skip !== 'domain') where.push(eq(adapters.domain, input.domain));
  if (input.taskType && skip !== 'taskType') where.push(eq(adapters.taskType, input.taskType));
  if (input.rank && skip !== 'rank') where.push(eq(adapters.rank, input.rank));
  if (input.license && skip !== 'license') where.push(eq(adapters.license, input.license));
  if (input.peftType && skip !== 'peftType') where.push(eq(adapters.peftType, input.peftType));
  if (input.tag && skip !== 'tag') where.push(sql`${adapters.tags} @> array[${input.tag}]::text[]`);
  return where;
}

// Matches ranked by relevance: the most downloaded ones. Others are reachable through filters
// and the other sorts.
const RELEVANCE_CANDIDATES = 300;

/** Returns the sort key of an order and the SQL type its cursor value is cast to. */
function sortKey(sort: AdapterSort, query: string | undefined): { key: SQL; type: string } {
  switch (sort) {
    case 'downloads': return { key: sql`${adapters.downloads}`, type: 'integer' };
    case 'likes': return { key: sql`${adapters.likes}`, type: 'integer' };
    case 'score': return { key: sql`coalesce(${adapters.bestScore}, -1)`, type: 'double precision' };
    case 'relevance':
      if (query) {
        return {
          key: sql`(ts_rank(${adapters.searchVector}, websearch_to_tsquery('english', ${query})) + similarity(${adapters.name}, ${query}))`,
          type: 'double precision',
        };
      }
      return { key: sql`${adapters.updatedAt}`, type: 'timestamptz' };
    case 'recent':
    default: return { key: sql`${adapters.updatedAt}`, type: 'timestamptz' };
  }
}

function encodeCursor(value: string, id: string): string {
  return Buffer.from(JSON.stringify([value, id])).toString('base64url');
}

function decodeCursor(cursor: string): [string, string] {
  try {
    const decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(decoded) && decoded.length === 2 && typeof decoded[0] === 'string' && typeof decoded[1] === 'string'
      && /^[0-9a-f-]{36}$/.test(decoded[1]) && decoded[0].length < 100) {
      return decoded as [string, string];
    }
  } catch { /* reported below */ }
  throw badRequest(`cursor ${JSON.stringify(cursor.slice(0, 40))} is not valid; pass the nextCursor of a previous page with the same sort`);
}

/**
 * Full-text and name-similarity search over listed adapters, with filters and keyset
 * pagination: `nextCursor` resumes after the last item, so pages stay stable while new
 * adapters arrive (unlike offsets).
 */
export async function searchAdapters(db: Db, reader: Reader, input: SearchInput) {
  const query = input.query?.trim() || undefined;
  const { key, type } = sortKey(input.sort, query);
  const readable = await readableAdapters(reader);
  let where = conditions(input, readable);
  if (input.sort === 'relevance' && query) {
    // Ranking reads every matching row, and a common word matches half the registry, so only
    // the most downloaded matches are ranked. The subquery walks the downloads index and stops
    // after RELEVANCE_CANDIDATES matches; a rare word takes the text indexes instead.
    const candidates = db.select({ id: adapters.id }).from(adapters).where(and(...conditions(input, readable)))
      .orderBy(desc(adapters.downloads), desc(adapters.id)).limit(RELEVANCE_CANDIDATES);
    // The candidates already meet every condition; repeating them would scan all matches again.
    where = [inArray(adapters.id, candidates)];
  }
  if (input.cursor) {
    const [value, id] = decodeCursor(input.cursor);
    // Descending order on (key, id): the next page starts strictly after the cursor.
    where.push(sql`(${key}, ${adapters.id}) < (cast(${value} as ${sql.raw(type)}), cast(${id} as uuid))`);
  }

  const rows = await db.select({
    id: adapters.id,
    namespace: namespaces.name,
    name: adapters.name,
    description: adapters.description,
    domain: adapters.domain,
    baseModelId: adapters.baseModelId,
    visibility: adapters.visibility,
    downloads: adapters.downloads,
    likes: adapters.likes,
    updatedAt: adapters.updatedAt,
    latestVersion: adapters.latestVersion,
    rank: adapters.rank,
    peftType: adapters.peftType,
    taskType: adapters.taskType,
    license: adapters.license,
    tags: adapters.tags,
    sizeBytes: adapters.sizeBytes,
    bestScore: adapters.bestScore,
    deprecated: sql<boolean>`${adapters.deprecatedAt} is not null`,
    sortValue: sql<string>`(${key})::text`,
  })
    .from(adapters)
    .innerJoin(namespaces, eq(namespaces.id, adapters.namespaceId))
    .where(and(...where))
    .orderBy(sql`${key} desc`, sql`${adapters.id} desc`)
    .limit(input.limit + 1);

  const more = rows.length > input.limit;
  const page = more ? rows.slice(0, input.limit) : rows;
  const last = page[page.length - 1];
  return {
    items: page.map(({ sortValue: _sortValue, ...item }) => item),
    nextCursor: more && last ? encodeCursor(last.sortValue, last.id) : null,
  };
}

const FACETS = {
  baseModelId: adapters.baseModelId,
  domain: adapters.domain,
  taskType: adapters.taskType,
  rank: adapters.rank,
  license: adapters.license,
  peftType: adapters.peftType,
} as const;
export type Facet = keyof typeof FACETS;
// A facet lists its most common values; the long tail is reachable through the text query.
const FACET_VALUES = 20;

/**
 * Counts listed adapters per value of each facet. Each facet is counted with every filter
 * except its own, so choosing a value still shows what the other values would give.
 */
export async function searchFacets(db: Db, reader: Reader, input: SearchFilters): Promise<Record<Facet, { value: string; count: number }[]>> {
  const readable = await readableAdapters(reader);
  const entries = await Promise.all((Object.keys(FACETS) as Facet[]).map(async (facet) => {
    const column = FACETS[facet];
    const rows = await db.select({ value: sql<string>`${column}::text`, count: sql<number>`count(*)::int` })
      .from(adapters)
      .where(and(...conditions(input, readable, facet), isNotNull(column)))
      .groupBy(column)
      .orderBy(sql`count(*) desc`, column)
      .limit(FACET_VALUES);
    return [facet, rows] as const;
  }));
  return Object.fromEntries(entries) as Record<Facet, { value: string; count: number }[]>;
}
