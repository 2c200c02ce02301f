'use client';

import { useMutation } from '@tanstack/react-query';
import { useState } from 'react';
import { useTRPC } from '@/lib/trpc-react';

/** Switches an adapter between public and private; shown only to admins of its namespace. */
export function VisibilityToggle(props: { namespace: string; name: string; visibility: 'public' | 'private' }) {
  const trpc = useTRPC();
  const [visibility, setVisibility] = useState(props.visibility);
  const change = useMutation(trpc.adapters.setVisibility.mutationOptions({ onSuccess: (result) => setVisibility(result.visibility) }));
  const next = visibility === 'public' ? 'private' : 'public';
  return (
    <>
      <button className="secondary" data-testid="visibility-toggle" disabled={change.isPending}
        onClick={() => change.mutate({ namespace: props.namespace, name: props.name, visibility: next })}>
        Make {next}
      </button>
      {change.error && <span className="error"> {change.error.message}</span>}
    </>
  );
}
