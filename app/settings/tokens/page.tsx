'use client';

import { useMutation } from '@tanstack/react-query';
import { useTRPC } from '@/lib/trpc-react';

export default function TokensPage() {
  const trpc = useTRPC();
  const create = useMutation(trpc.auth.createToken.mutationOptions());
  return (
    <div className="card">
      <h1>API tokens</h1>
      <p className="muted">Tokens let the CLI and scripts act as you. The secret is shown once; only its hash is stored.</p>
      <form className="row" onSubmit={(event) => {
        event.preventDefault();
        create.mutate({ name: String(new FormData(event.currentTarget).get('name')), scopes: ['read', 'write', 'fine-tune', 'evaluate'], expiresInDays: null });
      }}>
        <input name="name" placeholder="Token name, e.g. laptop CLI" required />
        <button type="submit">Create token</button>
      </form>
      {create.data && <p>New token (copy it now): <code data-testid="new-token">{create.data.token}</code></p>}
      {create.error && <p className="error">{create.error.message}</p>}
    </div>
  );
}
