import { TRPCError } from '@trpc/server';
import { serverCaller } from '@/lib/server-caller';

export const dynamic = 'force-dynamic';

const percent = (value: number) => `${(value * 100).toFixed(1)}%`;
const points = (value: number | null) => (value === null ? '–' : `${value >= 0 ? '+' : ''}${(value * 100).toFixed(1)}`);
const REF = /^([^/@\s]+)\/([^/@\s]+)@([1-9]\d{0,8})$/;

/** Compares 2 to 4 adapter versions given as `?v=namespace/name@version`, task by task. */
export default async function ComparePage({ searchParams }: { searchParams: Promise<Record<string, string | string[] | undefined>> }) {
  const raw = (await searchParams).v;
  let refs: string[] = [];
  if (Array.isArray(raw)) refs = raw;
  else if (raw) refs = [raw];
  const bad = refs.find((ref) => !REF.test(ref));
  if (bad !== undefined) return <><h1>Compare versions</h1><p className="error" role="alert">v={JSON.stringify(bad)} is not a version; write namespace/name@version, such as demo/pubmedqa-demo@1</p></>;
  if (refs.length < 2 || refs.length > 4) {
    return <><h1>Compare versions</h1><p className="error" role="alert">Choose 2 to 4 versions on a leaderboard to compare; {refs.length} {refs.length === 1 ? 'was' : 'were'} chosen.</p></>;
  }
  const versions = refs.map((ref) => {
    const [, namespace, name, version] = REF.exec(ref)!;
    return { namespace: namespace!, name: name!, version: Number(version) };
  });

  let comparison;
  try {
    comparison = await (await serverCaller()).evals.compare({ versions });
  } catch (error) {
    if (error instanceof TRPCError && (error.code === 'NOT_FOUND' || error.code === 'BAD_REQUEST')) {
      return <><h1>Compare versions</h1><p className="error" role="alert">{error.message}</p></>;
    }
    throw error;
  }
  const [first] = comparison.versions;
  return (
    <>
      <h1>Compare versions</h1>
      <p className="muted">Base model {comparison.baseModelId}. Each row compares runs under one task configuration (same items, few-shot count and seed);
        differences are in accuracy points against {first!.adapter}@{first!.version}.</p>
      <table data-testid="comparison">
        <thead>
          <tr>
            <th>Task</th><th>Items</th><th>Base model</th>
            {comparison.versions.map((v, index) => (
              <th key={v.adapterVersionId} colSpan={index === 0 ? 1 : 2}><a href={`/${v.adapter}?version=${v.version}`}>{v.adapter}@{v.version}</a></th>
            ))}
          </tr>
        </thead>
        <tbody>{comparison.tasks.map((t) => (
          <tr key={t.taskId} data-testid="comparison-row">
            <td><a href={`/leaderboard/${t.taskId}`}>{t.taskId}</a></td>
            <td>{t.total} ({t.numFewshot}-shot)</td>
            <td>{t.base ? percent(t.base.accuracy) : '–'}</td>
            {t.scores.map((s, index) => {
              const cell = s
                ? <td key={`s${index}`}><a href={`/evals/runs/${s.resultId}`}>{percent(s.accuracy)} ± {percent(s.stderr)}</a>{s.contaminated && <strong className="error"> contaminated</strong>}</td>
                : <td key={`s${index}`} className="muted">not run</td>;
              return index === 0 ? cell : [cell, <td key={`d${index}`} data-testid="difference">{points(t.differences[index] ?? null)}</td>];
            })}
          </tr>))}
        </tbody>
      </table>
      {comparison.tasks.length === 0 && <p className="muted">None of these versions has an evaluation yet.</p>}
      {comparison.versions.some((v) => v.selfReported.length > 0) && (
        <>
          <h2>Self-reported (from model cards, not verified)</h2>
          <ul>{comparison.versions.flatMap((v) => v.selfReported.map((m, index) => (
            <li key={`${v.adapterVersionId}-${index}`}>{v.adapter}@{v.version}: {m.dataset} {m.metric} {m.value} <span className="badge">self-reported</span></li>
          )))}</ul>
        </>
      )}
    </>
  );
}
