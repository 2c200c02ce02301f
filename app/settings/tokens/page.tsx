'use client';

import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useTRPC } from '@/lib/trpc-react';

const SCOPES = ['read', 'write', 'fine-tune', 'evaluate', 'admin'] as const;
type Scope = (typeof SCOPES)[number];

function when(value: string | Date | null): string {
  return value ? new Date(value).toLocaleString('en-GB') : '—';
}

export default function TokensPage() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const tokens = useQuery(trpc.auth.tokens.queryOptions());
  const refresh = { onSuccess: () => void queryClient.invalidateQueries() };
  const create = useMutation(trpc.auth.createToken.mutationOptions(refresh));
  const revoke = useMutation(trpc.auth.revokeToken.mutationOptions(refresh));

  return (
    <div className="card">
      <h1>API tokens</h1>
      <p className="muted">Tokens let the CLI and scripts act as you. The secret is shown once; only its hash is stored.</p>
      <form onSubmit={(event) => {
        event.preventDefault();
        const form = new FormData(event.currentTarget);
        const days = Number(form.get('days'));
        const adapters = String(form.get('adapters') ?? '').split(/[\s,]+/).filter(Boolean);
        create.mutate({
          name: String(form.get('name')),
          scopes: SCOPES.filter((scope) => form.get(`scope-${scope}`) === 'on') as Scope[],
          expiresInDays: days > 0 ? days : null,
          namespace: String(form.get('namespace') ?? '').trim() || null,
          adapters: adapters.length > 0 ? adapters : null,
        });
      }}>
        <div className="row">
          <input name="name" placeholder="Token name, e.g. laptop CLI" required />
          <input name="days" type="number" min={0} max={3650} defaultValue={90} aria-label="Expires after days (0 for never)" />
        </div>
        <div className="row">
          {SCOPES.map((scope) => (
            <label key={scope}><input type="checkbox" name={`scope-${scope}`} defaultChecked={scope !== 'admin'} /> {scope}</label>
          ))}
        </div>
        <div className="row">
          <input name="namespace" placeholder="Only this namespace (optional)" />
          <input name="adapters" placeholder="Only these adapters: namespace/name, … (optional)" />
        </div>
        <button type="submit">Create token</button>
      </form>
      {create.data && <p>New token (copy it now): <code data-testid="new-token">{create.data.token}</code></p>}
      {create.error && <p className="error">{create.error.message}</p>}

      <table>
        <thead><tr><th>Name</th><th>Prefix</th><th>Scopes</th><th>Limited to</th><th>Expires</th><th>Last used</th><th /></tr></thead>
        <tbody>{tokens.data?.map((token) => (
          <tr key={token.id}>
            <td>{token.name}</td><td><code>{token.prefix}…</code></td><td>{token.scopes.join(', ')}</td>
            <td>{token.namespace ?? (token.adapterIds ? `${token.adapterIds.length} adapters` : 'everything you may do')}</td>
            <td>{when(token.expiresAt)}</td><td>{when(token.lastUsedAt)}</td>
            <td>{token.revokedAt ? `revoked ${when(token.revokedAt)}` : <button type="button" onClick={() => revoke.mutate({ id: token.id })}>Revoke</button>}</td>
          </tr>))}
        </tbody>
      </table>
      {revoke.error && <p className="error">{revoke.error.message}</p>}
    </div>
  );
}
