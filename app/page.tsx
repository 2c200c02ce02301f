'use client';

import { useQuery } from '@tanstack/react-query';
import { useRouter, useSearchParams } from 'next/navigation';
import { Suspense, useState } from 'react';
import { useTRPC } from '@/lib/trpc-react';

function Browse() {
  const trpc = useTRPC();
  const router = useRouter();
  // Never null in the App Router. The type allows null because pages/api exists.
  const params = useSearchParams()!;
  const query = params.get('q') ?? '';
  const baseModelId = params.get('base') ?? '';
  const domain = params.get('domain') ?? '';
  const sort = (params.get('sort') ?? 'recent') as 'recent' | 'downloads' | 'likes';
  const [text, setText] = useState(query);

  const baseModels = useQuery(trpc.baseModels.list.queryOptions());
  const results = useQuery(trpc.adapters.search.queryOptions({ query: query || undefined, baseModelId: baseModelId || undefined, domain: domain || undefined, sort }));

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
        <input aria-label="Search adapters" placeholder="Search adapters" value={text} onChange={(e) => setText(e.target.value)} style={{ minWidth: 320 }} />
        <select aria-label="Base model" value={baseModelId} onChange={(e) => update({ base: e.target.value })}>
          <option value="">All base models</option>
          {baseModels.data?.map((m) => <option key={m.id} value={m.id}>{m.displayName}</option>)}
        </select>
        <select aria-label="Domain" value={domain} onChange={(e) => update({ domain: e.target.value })}>
          <option value="">All domains</option>
          {['medical', 'finance', 'industry', 'general'].map((d) => <option key={d} value={d}>{d}</option>)}
        </select>
        <select aria-label="Sort" value={sort} onChange={(e) => update({ sort: e.target.value === 'recent' ? '' : e.target.value })}>
          <option value="recent">Recently updated</option>
          <option value="downloads">Most downloaded</option>
          <option value="likes">Most liked</option>
        </select>
        <button type="submit">Search</button>
      </form>
      {results.error && <p className="error">{results.error.message}</p>}
      {results.data?.length === 0 && <p className="muted">No adapters match. Publish one with <code>npm run cli -- publish DIR</code> or fine-tune one.</p>}
      <div className="grid" style={{ marginTop: 16 }}>
        {results.data?.map((a) => (
          <a key={`${a.namespace}/${a.name}`} href={`/${a.namespace}/${a.name}`} className="card" style={{ textDecoration: 'none', color: 'inherit' }}>
            <strong>{a.namespace}/{a.name}</strong>
            <div className="muted">{a.description || 'No description'}</div>
            <div className="row muted" style={{ fontSize: 13 }}>
              <span className="badge">{a.baseModelId}</span>
              {a.domain && <span className="badge">{a.domain}</span>}
              {a.deprecated && <span className="badge state-failed">deprecated</span>}
              <span>v{a.latestVersion}</span>
              <span>{a.downloads} downloads</span>
              <span>{a.likes} likes</span>
              {a.bestAccuracy !== null && <span>best accuracy {(Number(a.bestAccuracy) * 100).toFixed(1)}%</span>}
            </div>
          </a>
        ))}
      </div>
    </>
  );
}

export default function BrowsePage() {
  return <Suspense><Browse /></Suspense>;
}
