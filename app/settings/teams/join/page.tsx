'use client';

import { useMutation } from '@tanstack/react-query';
import { useSearchParams } from 'next/navigation';
import { Suspense } from 'react';
import { useTRPC } from '@/lib/trpc-react';

/** Accepts an invitation link (`?token=ami_…`) for the signed-in user. */
function Join() {
  const trpc = useTRPC();
  const token = useSearchParams()?.get('token') ?? null;
  const accept = useMutation(trpc.teams.accept.mutationOptions());
  if (!token) return <p className="error">This invitation link has no token; ask a team admin for the full link.</p>;
  return (
    <div className="card">
      <h1>Join a team</h1>
      {accept.data
        ? <p>You joined <a href="/settings/teams">{accept.data.namespace}</a> as {accept.data.role}.</p>
        : <button type="button" onClick={() => accept.mutate({ token })}>Accept invitation</button>}
      {accept.error && <p className="error">{accept.error.message} {accept.error.data?.code === 'UNAUTHORIZED' && <a href="/signin">Sign in</a>}</p>}
    </div>
  );
}

export default function JoinPage() {
  return <Suspense><Join /></Suspense>;
}
