'use client';

import { useMutation, useQuery } from '@tanstack/react-query';
import { use } from 'react';
import { useTRPC } from '@/lib/trpc-react';
import { DatasetLineage } from '../../finetune/dataset-lineage';

const ENDED = new Set(['succeeded', 'failed', 'cancelled']);

/** Draws training loss against step as an SVG line chart. */
function LossCurve({ points }: { points: { step: number; loss: number }[] }) {
  if (points.length < 2) return <p className="muted">The loss curve appears after two training steps.</p>;
  const width = 640;
  const height = 220;
  const pad = 36;
  const maxStep = Math.max(...points.map((p) => p.step));
  const losses = points.map((p) => p.loss);
  const low = Math.min(...losses);
  const high = Math.max(...losses);
  const x = (step: number) => pad + ((width - 2 * pad) * step) / Math.max(1, maxStep);
  const y = (loss: number) => height - pad - ((height - 2 * pad) * (loss - low)) / Math.max(1e-9, high - low);
  const path = points.map((p, i) => `${i ? 'L' : 'M'}${x(p.step).toFixed(1)},${y(p.loss).toFixed(1)}`).join(' ');
  return (
    <svg width={width} height={height} role="img" aria-label="Training loss curve" style={{ background: '#fff', border: '1px solid var(--line)' }}>
      <path d={path} fill="none" stroke="var(--accent)" strokeWidth={2} />
      <text x={pad} y={16} fontSize={12}>loss {high.toFixed(3)}</text>
      <text x={pad} y={height - 8} fontSize={12}>loss {low.toFixed(3)} · step {maxStep}</text>
    </svg>
  );
}

export default function JobPage({ params }: { params: Promise<{ id: string }> }) {
  const { id } = use(params);
  const trpc = useTRPC();
  const job = useQuery(trpc.finetune.get.queryOptions({ jobId: id }, { refetchInterval: (query) => (query.state.data && ENDED.has(query.state.data.state) ? false : 2000) }));
  const cancel = useMutation(trpc.finetune.cancel.mutationOptions({ onSuccess: () => job.refetch() }));

  if (job.error) return <p className="error">{job.error.message}</p>;
  if (!job.data) return <p>Loading…</p>;
  const data = job.data;
  const progress = data.progress as { step?: number; totalSteps?: number; unit?: string; subject?: string; loss?: number; tokensPerSecond?: number } | null;
  const params_ = data.params as Record<string, unknown>;

  return (
    <>
      <h1>{data.kind === 'finetune' ? `Fine-tune ${String(params_.adapterName)}` : `Evaluation on ${String(params_.taskId)}`}</h1>
      <p>State: <strong data-testid="job-state" className={`state-${data.state}`}>{data.state}</strong>
        {data.cancelRequested && data.state === 'running' && <span className="muted"> (cancelling)</span>}
        {' '}· attempt {data.attempts} of {data.maxAttempts}</p>
      {!ENDED.has(data.state) && <button className="secondary" onClick={() => cancel.mutate({ jobId: id })} disabled={cancel.isPending || data.cancelRequested}>Cancel</button>}
      {cancel.error && <p className="error">{cancel.error.message}</p>}
      {data.error && <p className="error">{data.error.reason}: {data.error.message}</p>}
      {data.result && <p>Published <a data-testid="job-result" href={`/${data.result.namespace}/${data.result.name}?version=${data.result.version}`}>{data.result.namespace}/{data.result.name} v{data.result.version}</a></p>}
      {data.children.length > 0 && <p>Evaluations: {data.children.map((c) => <a key={c.id} href={`/jobs/${c.id}`} style={{ marginRight: 8 }}>{c.kind} ({c.state})</a>)}</p>}

      {data.kind === 'evaluate' && progress?.unit === 'items' && progress.step !== undefined && (
        <p data-testid="eval-progress">
          <progress value={progress.step} max={progress.totalSteps} /> {progress.step} / {progress.totalSteps} items scored
          {progress.subject ? <span className="muted"> (now: {progress.subject})</span> : null}
        </p>
      )}
      {data.kind === 'finetune' && (
        <>
          <h2>Training</h2>
          {progress?.step !== undefined && (
            <p>Step {progress.step} / {progress.totalSteps} · loss {progress.loss?.toFixed(4)} · {progress.tokensPerSecond?.toFixed(0)} tokens/s</p>
          )}
          <LossCurve points={data.lossCurve.filter((p) => p.attempt === data.attempts)} />
          {data.dataset && (
            <>
              <h2>Data</h2>
              <p>{data.dataset.name} v{data.dataset.version} <span className="muted">sha256 {data.dataset.sha256.slice(0, 12)}…</span></p>
              <DatasetLineage lineage={data.dataset.lineage} />
            </>
          )}
        </>
      )}
      {data.summary && <><h2>Summary</h2><pre>{JSON.stringify(data.summary, null, 2)}</pre></>}

      <h2>Events and logs</h2>
      <pre data-testid="job-logs" style={{ maxHeight: 320 }}>
        {data.events.map((e) => `${new Date(e.createdAt).toISOString()} [attempt ${e.attempt}] ${e.type} ${e.type === 'log' ? String(e.payload.message) : JSON.stringify(e.payload)}`).join('\n')}
      </pre>
    </>
  );
}
