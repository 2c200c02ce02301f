'use client';

import { useInfiniteQuery, useQuery } from '@tanstack/react-query';
import { useRouter, useSearchParams } from 'next/navigation';
import { Suspense, useState } from 'react';
import { useTRPC } from '@/lib/trpc-react';
import { formatBytes } from '@/lib/format';

const SORTS = [
  ['relevance', 'Best match'],
  ['recent', 'Recently updated'],
  ['downloads', 'Most downloaded'],
  ['likes', 'Most liked'],
  ['score', 'Best leaderboard score'],
] as const;
type Sort = (typeof SORTS)[number][0];

// URL parameter, search filter and heading of each facet, in display order.
const FACETS = [
  ['base', 'baseModelId', 'Base model'],
  ['domain', 'domain', 'Domain'],
  ['task', 'taskType', 'Task'],
  ['rank', 'rank', 'Rank'],
  ['license', 'license', 'License'],
  ['peft', 'peftType', 'PEFT type'],
] as const;

function Browse() {
  const trpc = useTRPC();
  const router = useRouter();
  // Never null in the App Router. The type allows null because pages/api exists.
  const params = useSearchParams()!;
  const query = params.get('q') ?? '';
  const sort = (SORTS.some(([key]) => key === params.get('sort')) ? params.get('sort') : 'relevance') as Sort;
  const [text, setText] = useState(query);

  const filters = {
    query: query || undefined,
    baseModelId: params.get('base') || undefined,
    domain: params.get('domain') || undefined,
    taskType: params.get('task') || undefined,
    rank: params.get('rank') && /^\d+$/.test(params.get('rank')!) ? Number(params.get('rank')) : undefined,
    license: params.get('license') || undefined,
    peftType: params.get('peft') || undefined,
    tag: params.get('tag') || undefined,
  };
  const facets = useQuery(trpc.adapters.facets.queryOptions(filters));
  const results = useInfiniteQuery(trpc.adapters.search.infiniteQueryOptions(
    { ...filters, sort, limit: 24 },
    { getNextPageParam: (page) => page.nextCursor },
  ));
  const items = results.data?.pages.flatMap((page) => page.items) ?? [];

  // Filters live in the URL so a search can be shared and reloaded.
  const update = (changes: Record<string, string>) => {
    const next = new URLSearchParams(params.toString());
    for (const [key, value] of Object.entries(changes)) value ? next.set(key, value) : next.delete(key);
    router.push(`/?${next.toString()}`);
  };

  return (
    <>
      <h1>LoRA adapters</h1>
      <form className="row" onSubmit={(event) => { event.preventDefault(); update({ q: text }); }}>
        <input aria-label="Search adapters" placeholder="Search names, descriptions, tags and model cards" value={text} onChange={(e) => setText(e.target.value)} style={{ minWidth: 360 }} />
        <select aria-label="Sort" value={sort} onChange={(e) => update({ sort: e.target.value === 'relevance' ? '' : e.target.value })}>
          {SORTS.map(([key, label]) => <option key={key} value={key}>{label}</option>)}
        </select>
        <button type="submit">Search</button>
        {filters.tag && <button type="button" className="badge" onClick={() => update({ tag: '' })}>tag: {filters.tag} ×</button>}
      </form>
      <div className="browse">
        <aside aria-label="Filters">
          {FACETS.map(([param, key, heading]) => {
            const values = facets.data?.[key] ?? [];
            const chosen = params.get(param);
            if (values.length === 0 && !chosen) return null;
            return (
              <section key={param} className="facet">
                <h3>{heading}</h3>
                {chosen && <button type="button" className="link" onClick={() => update({ [param]: '' })}>Any {heading.toLowerCase()}</button>}
                <ul>
                  {values.map((entry) => (
                    <li key={entry.value}>
                      <label>
                        <input type="radio" name={param} checked={chosen === entry.value} onChange={() => update({ [param]: entry.value })} />
                        {' '}{entry.value} <span className="muted">({entry.count})</span>
                      </label>
                    </li>
                  ))}
                </ul>
              </section>
            );
          })}
        </aside>
        <div>
          {results.error && <p className="error">{results.error.message}</p>}
          {results.data && items.length === 0 && <p className="muted">No adapters match. Publish one from the <a href="/publish">publish page</a> or with <code>npm run cli -- publish DIR</code>, or fine-tune one.</p>}
          <div className="grid">
            {items.map((a) => (
              <a key={a.id} href={`/${a.namespace}/${a.name}`} className="card" style={{ textDecoration: 'none', color: 'inherit' }}>
                <strong>{a.namespace}/{a.name}</strong>
                <div className="muted">{a.description || 'No description'}</div>
                <div className="row muted" style={{ fontSize: 13 }}>
                  <span className="badge">{a.baseModelId}</span>
                  {a.domain && <span className="badge">{a.domain}</span>}
                  {a.deprecated && <span className="badge state-failed">deprecated</span>}
                  <span>v{a.latestVersion}</span>
                  {a.rank !== null && <span>rank {a.rank}</span>}
                  {a.sizeBytes !== null && <span>{formatBytes(a.sizeBytes)}</span>}
                  <span>{a.downloads} downloads</span>
                  <span>{a.likes} likes</span>
                  {a.bestScore !== null && <span>best score {(a.bestScore * 100).toFixed(1)}%</span>}
                </div>
              </a>
            ))}
          </div>
          {results.hasNextPage && (
            <button type="button" onClick={() => results.fetchNextPage()} disabled={results.isFetchingNextPage} style={{ marginTop: 16 }}>
              {results.isFetchingNextPage ? 'Loading…' : 'Load more'}
            </button>
          )}
        </div>
      </div>
    </>
  );
}

export default function BrowsePage() {
  return <Suspense><Browse /></Suspense>;
}
