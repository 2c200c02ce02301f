'use client';

import { useMutation } from '@tanstack/react-query';
import { useSession } from 'next-auth/react';
import { useState } from 'react';
import { useTRPC } from '@/lib/trpc-react';

/** Lets any signed-in visitor queue a suite evaluation of the version shown. */
export function EvaluateButton(props: { namespace: string; name: string; version: number; suites: { id: string; displayName: string }[] }) {
  const trpc = useTRPC();
  const { data: session } = useSession();
  const [suiteId, setSuiteId] = useState(props.suites[0]?.id ?? '');
  const request = useMutation(trpc.evals.requestSuite.mutationOptions());
  if (!session || props.suites.length === 0) return null;
  return (
    <div className="row">
      <label>Evaluate v{props.version} on{' '}
        <select value={suiteId} onChange={(event) => setSuiteId(event.target.value)}>
          {props.suites.map((suite) => <option key={suite.id} value={suite.id}>{suite.displayName}</option>)}
        </select>
      </label>
      <button className="secondary" disabled={request.isPending} onClick={() => request.mutate({ namespace: props.namespace, name: props.name, version: props.version, suiteId })}>Request evaluation</button>
      {request.data && <span>Queued {request.data.jobIds.map((id) => <a key={id} href={`/jobs/${id}`} style={{ marginRight: 6 }}>job</a>)}</span>}
      {request.error && <span className="error"> {request.error.message}</span>}
    </div>
  );
}
