'use client';

import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useTRPC } from '@/lib/trpc-react';

export default function WebhooksPage() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const hook = useQuery(trpc.webhooks.get.queryOptions(undefined, { refetchInterval: 5000 }));
  const refresh = { onSuccess: () => void queryClient.invalidateQueries() };
  const set = useMutation(trpc.webhooks.set.mutationOptions(refresh));
  const remove = useMutation(trpc.webhooks.delete.mutationOptions(refresh));

  return (
    <div className="card">
      <h1>Webhook</h1>
      <p className="muted">
        When a job you started ends, the app POSTs JSON <code>{'{event, job, state, error, adapterVersion}'}</code> to this URL.
        The <code>X-Webhook-Signature</code> header is <code>sha256=</code> and the hex HMAC-SHA256 of
        <code> TIMESTAMP.BODY</code> under the signing secret, where TIMESTAMP is the <code>X-Webhook-Timestamp</code> header.
        A delivery that gets no 2xx answer is retried with exponential backoff.
      </p>
      <form onSubmit={(event) => {
        event.preventDefault();
        set.mutate({ url: String(new FormData(event.currentTarget).get('url')) });
      }}>
        <div className="row">
          <input name="url" type="url" placeholder="https://example.com/hooks/adapters" defaultValue={hook.data?.url ?? ''} required style={{ width: 420 }} aria-label="Webhook URL" />
          <button disabled={set.isPending}>{hook.data ? 'Save and issue a new secret' : 'Save'}</button>
          {hook.data && <button type="button" className="secondary" onClick={() => remove.mutate()} disabled={remove.isPending}>Delete</button>}
        </div>
      </form>
      {set.error && <p className="error">{set.error.message}</p>}
      {remove.error && <p className="error">{remove.error.message}</p>}
      {set.data && <p data-testid="webhook-secret">Signing secret, shown only now: <code>{set.data.secret}</code></p>}

      {hook.data && (
        <>
          <h2>Deliveries</h2>
          {hook.data.deliveries.length === 0 ? <p className="muted">None yet.</p> : (
            <table>
              <thead><tr><th>Created</th><th>Job</th><th>State</th><th>Tries (status codes)</th><th>Last error</th></tr></thead>
              <tbody>{hook.data.deliveries.map((d) => {
                const last = d.attempts.at(-1);
                return (
                  <tr key={d.id}>
                    <td>{new Date(d.createdAt).toLocaleString()}</td>
                    <td>{d.jobId ? <a href={`/jobs/${d.jobId}`}>{d.jobId.slice(0, 8)}</a> : '–'}</td>
                    <td>{d.state}{d.state === 'pending' && d.attempts.length > 0 && <span className="muted"> (next try {new Date(d.nextAttemptAt).toLocaleTimeString()})</span>}</td>
                    <td>{d.attempts.length} ({d.attempts.map((a) => a.status ?? 'no answer').join(', ') || '–'})</td>
                    <td className="muted">{last?.error ?? ''}</td>
                  </tr>
                );
              })}</tbody>
            </table>
          )}
        </>
      )}
    </div>
  );
}
