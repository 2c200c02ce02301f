'use client';

import { useMutation, useQuery } from '@tanstack/react-query';
import { use, useEffect, useRef } from 'react';
import { useTRPC } from '@/lib/trpc-react';
import { DatasetLineage } from '../../finetune/dataset-lineage';
import { formatBytes, formatSeconds, LineChart } from './charts';

const ENDED = new Set(['succeeded', 'failed', 'cancelled']);

interface TimelineEntry { type: string; attempt: number; at: string; state: string | null; step: number | null; reason: string | null; hardware: string | null }

/** Names a timeline entry: state changes, the worker starting, cancellation and checkpoints. */
function describeEntry(entry: TimelineEntry): string {
  if (entry.type === 'checkpoint-saved') return `checkpoint after step ${entry.step}`;
  if (entry.type === 'cancel-requested') return 'cancellation requested';
  if (entry.type === 'started') return `running on ${entry.hardware ?? 'the runner'}`;
  const reason = entry.reason ? ` (${entry.reason})` : '';
  // A `running` state event marks the claim; the worker's `started` event marks training.
  if (entry.state === 'running') return `claimed by a runner, attempt ${entry.attempt}`;
  return `${entry.state}${reason}`;
}

function Timeline({ entries }: { entries: TimelineEntry[] }) {
  return (
    <ol data-testid="job-timeline">
      {entries.map((entry, i) => (
        <li key={i}><span className="muted">{new Date(entry.at).toLocaleString()}</span> · {describeEntry(entry)}</li>
      ))}
    </ol>
  );
}

export default function JobPage({ params }: { params: Promise<{ id: string }> }) {
  const { id } = use(params);
  const trpc = useTRPC();
  const job = useQuery(trpc.finetune.get.queryOptions({ jobId: id }, { refetchInterval: (query) => (query.state.data && ENDED.has(query.state.data.state) ? false : 2000) }));
  const cancel = useMutation(trpc.finetune.cancel.mutationOptions({ onSuccess: () => job.refetch() }));
  const resume = useMutation(trpc.finetune.resume.mutationOptions({ onSuccess: () => job.refetch() }));
  const logs = useRef<HTMLPreElement>(null);
  const eventCount = job.data?.events.length ?? 0;

  // Keeps the newest log line in view while the job runs, as a terminal would.
  useEffect(() => {
    if (logs.current) logs.current.scrollTop = logs.current.scrollHeight;
  }, [eventCount]);

  if (job.error) return <p className="error">{job.error.message}</p>;
  if (!job.data) return <p>Loading…</p>;
  const data = job.data;
  const progress = data.progress as { step?: number; totalSteps?: number; unit?: string; subject?: string; loss?: number; learningRate?: number; tokensPerSecond?: number; etaSeconds?: number; cpuMemoryBytes?: number; gpuMemoryBytes?: number } | null;
  const params_ = data.params as Record<string, unknown>;
  const running = data.state === 'running';
  const canResume = data.kind === 'finetune' && (data.state === 'cancelled' || data.state === 'failed') && data.checkpoint !== null;
  const train = data.lossCurve.filter((p) => p.attempt === data.attempts);
  // A resumed attempt continues the step count, so earlier attempts' points before its first step still belong to the curve.
  const firstStep = train[0]?.step ?? Number.POSITIVE_INFINITY;
  const curve = [...data.lossCurve.filter((p) => p.attempt < data.attempts && p.step < firstStep), ...train];
  const validation = data.validationCurve;

  return (
    <>
      <h1>{jobTitle(data.kind, params_)}</h1>
      <p>State: <strong data-testid="job-state" className={`state-${data.state}`}>{data.state}</strong>
        {data.cancelRequested && running && <span className="muted"> (cancelling)</span>}
        {' '}· attempt {data.attempts} of {data.maxAttempts}</p>
      <p>
        {!ENDED.has(data.state) && <button className="secondary" onClick={() => cancel.mutate({ jobId: id })} disabled={cancel.isPending || data.cancelRequested}>Cancel</button>}{' '}
        {canResume && <button onClick={() => resume.mutate({ jobId: id })} disabled={resume.isPending}>Resume from step {data.checkpoint!.step}</button>}{' '}
        {data.kind === 'finetune' && <a href={`/finetune?from=${id}`}>Clone and edit</a>}{' '}
        <a href={`/api/jobs/${id}/logs`} download>Download logs</a>
      </p>
      {cancel.error && <p className="error">{cancel.error.message}</p>}
      {resume.error && <p className="error">{resume.error.message}</p>}
      {data.error && <p className="error">{data.error.reason}: {data.error.message}</p>}
      {data.result && <p>Published <a data-testid="job-result" href={`/${data.result.namespace}/${data.result.name}?version=${data.result.version}`}>{data.result.namespace}/{data.result.name} v{data.result.version}</a></p>}
      {data.children.length > 0 && <p>Evaluations: {data.children.map((c) => <a key={c.id} href={`/jobs/${c.id}`} style={{ marginRight: 8 }}>{c.kind} ({c.state})</a>)}</p>}

      <h2>Timeline</h2>
      <Timeline entries={data.timeline as TimelineEntry[]} />

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
            <table data-testid="job-progress">
              <tbody>
                <tr><th>Step</th><td>{progress.step} / {progress.totalSteps}</td></tr>
                <tr><th>Loss</th><td>{progress.loss?.toFixed(4)}</td></tr>
                <tr><th>Learning rate</th><td>{progress.learningRate?.toExponential(2)}</td></tr>
                <tr><th>Tokens per second</th><td>{progress.tokensPerSecond?.toFixed(0)}</td></tr>
                <tr><th>Time left (estimate)</th><td>{running ? formatSeconds(progress.etaSeconds) : '–'}</td></tr>
                <tr><th>CPU memory (worker)</th><td>{formatBytes(progress.cpuMemoryBytes)}</td></tr>
                <tr><th>GPU memory</th><td>{progress.gpuMemoryBytes === undefined ? 'none (CPU)' : formatBytes(progress.gpuMemoryBytes)}</td></tr>
              </tbody>
            </table>
          )}
          <LineChart title="Loss" series={[
            { label: 'training loss', color: 'var(--accent)', points: curve.map((p) => ({ step: p.step, value: p.loss })) },
            { label: 'validation loss', color: '#c2410c', points: validation.map((p) => ({ step: p.step, value: p.loss })) },
          ]} />
          <LineChart title="Learning rate" format={(value) => value.toExponential(2)} series={[
            { label: 'learning rate', color: '#15803d', points: curve.map((p) => ({ step: p.step, value: p.learningRate })) },
          ]} />
          <LineChart title="Tokens per second" format={(value) => value.toFixed(0)} series={[
            { label: 'tokens per second', color: '#7c3aed', points: curve.map((p) => ({ step: p.step, value: p.tokensPerSecond })) },
          ]} />

          <h2>Checkpoints</h2>
          {data.checkpoints.length === 0 ? <p className="muted">No checkpoint uploaded yet.</p> : (
            <ul data-testid="job-checkpoints">
              {data.checkpoints.map((c) => (
                <li key={`${c.attempt}-${c.step}`}>step {c.step} · attempt {c.attempt} · {new Date(c.at).toLocaleString()}
                  {data.checkpoint?.step === c.step && data.checkpoint.attempt === c.attempt && <strong> (resumes from here)</strong>}</li>
              ))}
            </ul>
          )}

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

      <h2>Events and logs {running && <span className="muted">(live)</span>}</h2>
      <pre ref={logs} data-testid="job-logs" style={{ maxHeight: 320, overflow: 'auto' }}>
        {data.events.map((e) => `${new Date(e.createdAt).toISOString()} [attempt ${e.attempt}] ${e.type} ${e.type === 'log' ? String(e.payload.message) : JSON.stringify(e.payload)}`).join('\n')}
      </pre>
      <p className="muted">The newest 200 events; download the logs for all of them.</p>
    </>
  );
}

function jobTitle(kind: string, params: Record<string, unknown>): string {
  if (kind === 'finetune') return `Fine-tune ${String(params.adapterName)}`;
  if (kind === 'export' && params.adapterVersionId === null) return 'ONNX playground graph export of the base model';
  if (kind === 'export') return `ONNX edge export of adapter version ${String(params.adapterVersionId)}`;
  return `Evaluation on ${String(params.taskId)}`;
}
