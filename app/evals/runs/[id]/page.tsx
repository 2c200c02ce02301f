import { TRPCError } from '@trpc/server';
import { notFound } from 'next/navigation';
import { serverCaller } from '@/lib/server-caller';

export const dynamic = 'force-dynamic';

const percent = (value: number) => `${(value * 100).toFixed(1)}%`;

/** Shows one evaluation result: metrics with standard errors, trivial baselines, settings, hardware, job and contamination. */
export default async function RunPage({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  if (!/^[1-9]\d{0,8}$/.test(id)) notFound();
  let run;
  try {
    run = await (await serverCaller()).evals.run({ id: Number(id) });
  } catch (error) {
    if (error instanceof TRPCError && error.code === 'NOT_FOUND') notFound();
    throw error;
  }
  const baselines = run.task.baselines;
  const contamination = run.contamination as null | { status: string; reason?: string; n?: number; threshold?: number; checkedItems?: number; contaminatedItems?: number; overlap?: number; flagged?: boolean; examples?: string[] };
  return (
    <>
      <h1>Evaluation run {run.id}</h1>
      <p>{run.adapter ? <a href={`/${run.adapter}?version=${run.version}`}>{run.adapter}@{run.version}</a> : <>base model {run.baseModelId}</>} on <a href={`/leaderboard/${run.task.id}`}>{run.task.displayName}</a> (task version {run.task.version}{run.task.currentVersion !== run.task.version ? `, now ${run.task.currentVersion}` : ''})</p>
      <table data-testid="run-metrics">
        <tbody>
          <tr><th>Accuracy</th><td>{percent(run.metrics.accuracy)} ± {percent(run.metrics.stderr)} ({run.metrics.correct} / {run.metrics.total})</td></tr>
          <tr><th>Length-normalised accuracy</th><td>{run.metrics.accNorm === null ? '–' : `${percent(run.metrics.accNorm)} ± ${percent(run.metrics.accNormStderr ?? 0)}`}</td></tr>
          {run.metrics.macroF1 !== null && <tr><th>Macro-F1</th><td>{percent(run.metrics.macroF1)}</td></tr>}
          {run.base && <tr><th>Base model, same settings</th><td><a href={`/evals/runs/${run.base.id}`}>{percent(run.base.accuracy)} ± {percent(run.base.stderr)}</a> ({run.base.total} items)</td></tr>}
          {baselines && <tr><th>Trivial baselines</th><td>random choice {percent(baselines.random)}; always &ldquo;{baselines.majority.answer}&rdquo; {percent(baselines.majority.accuracy)}
            {baselines.randomMacroF1 !== undefined && baselines.majority.macroF1 !== undefined && <> (macro-F1: random {percent(baselines.randomMacroF1)}, majority {percent(baselines.majority.macroF1)})</>}
            {' '}over the task&apos;s {run.task.itemCount} items</td></tr>}
          <tr><th>Harness</th><td>lm_eval {run.settings.harnessVersion ?? 'unknown'}</td></tr>
          <tr><th>Few-shot, seed</th><td>{run.settings.numFewshot}-shot, seed {run.settings.seed ?? '–'}</td></tr>
          <tr><th>Config hash</th><td><code>{run.settings.configHash}</code></td></tr>
          {run.settings.taskConfigHash && <tr><th>Harness task config hash</th><td><code>{run.settings.taskConfigHash}</code></td></tr>}
          {run.settings.suiteId && <tr><th>Suite</th><td><a href={`/leaderboard/suites/${run.settings.suiteId}?version=${run.settings.suiteVersion}&base=${encodeURIComponent(run.baseModelId)}`}>{run.settings.suiteId} v{run.settings.suiteVersion}</a></td></tr>}
          <tr><th>Hardware</th><td>{run.hardware}</td></tr>
          <tr><th>Duration</th><td>{run.durationSeconds.toFixed(1)} s</td></tr>
          <tr><th>Job</th><td><a href={`/jobs/${run.jobId}`}>{run.jobId}</a>{run.ranOnRunner ? '' : ' (not run by a runner)'}</td></tr>
        </tbody>
      </table>
      <h2>Contamination check</h2>
      <div data-testid="contamination">
        {contamination === null && <p className="muted">Not checked: only versions trained here have training data to compare.</p>}
        {contamination?.status === 'skipped' && <p className="muted">Skipped: {contamination.reason}</p>}
        {contamination?.status === 'checked' && (
          <p>
            {contamination.flagged ? <strong className="error">Flagged: </strong> : null}
            {contamination.contaminatedItems} of {contamination.checkedItems} items ({percent(contamination.overlap ?? 0)}) share at least one {contamination.n}-gram of
            lowercased words with the training data; results above {percent(contamination.threshold ?? 0)} are flagged.
            {(contamination.examples?.length ?? 0) > 0 && <> Examples: {contamination.examples!.join(', ')}.</>}
          </p>
        )}
      </div>
    </>
  );
}
