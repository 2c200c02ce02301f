import { TRPCError } from '@trpc/server';
import { notFound } from 'next/navigation';
import { parseLeaderboardParams, toSearchParams } from '@/lib/leaderboard-params';
import { serverCaller } from '@/lib/server-caller';
import { GainChart } from '../../gain-chart';

export const dynamic = 'force-dynamic';

const percent = (value: number) => `${(value * 100).toFixed(1)}%`;
const points = (value: number | null) => (value === null ? '–' : `${value >= 0 ? '+' : ''}${(value * 100).toFixed(1)}`);

const COLUMNS = [
  ['score', 'Suite score'], ['gain', 'Gain'], ['forgetting', 'General change'], ['parameters', 'Trainable parameters'], ['rank', 'LoRA rank'], ['downloads', 'Downloads'],
] as const;

export default async function SuiteLeaderboardPage({ params, searchParams }: {
  params: Promise<{ suite: string }>; searchParams: Promise<Record<string, string | string[] | undefined>>;
}) {
  const { suite } = await params;
  const query = toSearchParams(await searchParams);
  const parsed = parseLeaderboardParams(suite, query);
  if (parsed.error !== null) return <><h1>Leaderboard</h1><p className="error" role="alert">{parsed.error}</p></>;
  let board;
  try {
    board = await (await serverCaller()).evals.suiteLeaderboard(parsed.input);
  } catch (error) {
    if (error instanceof TRPCError && error.code === 'NOT_FOUND') notFound();
    if (error instanceof TRPCError && error.code === 'BAD_REQUEST') return <><h1>Leaderboard</h1><p className="error" role="alert">{error.message}</p></>;
    throw error;
  }

  const link = (changes: Record<string, string | null>) => {
    const next = new URLSearchParams(query);
    for (const [key, value] of Object.entries(changes)) if (value === null) next.delete(key); else next.set(key, value);
    return `?${next.toString()}`;
  };
  const sortLink = (column: string) => link({ sort: column, order: query.get('sort') === column && query.get('order') !== 'asc' ? 'asc' : 'desc' });
  const exportQuery = new URLSearchParams(query);
  if (board.baseModelId) exportQuery.set('base', board.baseModelId);
  const exportLink = (format: string) => `/api/leaderboards/${encodeURIComponent(board.suite.id)}/${format}?${exportQuery.toString()}`;
  const chart = board.entries.filter((e) => e.forgetting !== null).map((e) => ({ label: `${e.adapter}@${e.version}`, gain: e.gain, generalChange: e.forgetting!, flagged: e.contamination?.flagged ?? false }));

  return (
    <>
      <h1>{board.suite.displayName} leaderboard</h1>
      <p className="muted">{board.suite.description}</p>
      <p>
        Suite version {board.suite.version} (seed {board.suite.seed}; other versions:{' '}
        {board.suite.versions.filter((v) => v !== board.suite.version).map((v) => <a key={v} href={link({ version: String(v) })}>{v} </a>)})
        · base model <strong data-testid="base-model">{board.baseModelId ?? 'none scored yet'}</strong>
        · export <a href={exportLink('csv')}>CSV</a> <a href={exportLink('json')}>JSON</a>
      </p>
      <p className="muted">
        The suite score is the mean accuracy over the suite&apos;s tasks. Only runs by our runners under this suite version&apos;s exact
        settings rank: the same task data, item count, few-shot count, seed and harness version as the base model&apos;s run. Quick runs on
        fewer items are listed below as not comparable.
      </p>

      <form className="row" method="get">
        {board.baseModelId && <input type="hidden" name="base" value={board.baseModelId} />}
        {query.get('version') && <input type="hidden" name="version" value={query.get('version')!} />}
        <label>Adapter <input name="q" defaultValue={query.get('q') ?? ''} aria-label="Filter adapters" /></label>
        <label>LoRA rank <input name="rank" defaultValue={query.get('rank') ?? ''} size={4} /></label>
        <label><input type="checkbox" name="clean" value="1" defaultChecked={query.get('clean') === '1'} /> hide contaminated</label>
        <button type="submit">Filter</button>
      </form>

      <h2>Tasks and trivial baselines</h2>
      <table data-testid="suite-tasks">
        <thead><tr><th>Task</th><th>Items</th><th>Few-shot</th><th>Random choice</th><th>Majority answer</th><th>Base model</th></tr></thead>
        <tbody>{board.suite.tasks.map((t) => {
          const base = board.base?.tasks.find((b) => b.taskId === t.taskId);
          return (
            <tr key={t.taskId}>
              <td><a href={`/leaderboard/${t.taskId}`}>{t.displayName}</a></td><td>{t.limit === null ? t.itemCount ?? '–' : `first ${t.limit}`}</td><td>{t.numFewshot}</td>
              <td>{t.baselines ? percent(t.baselines.random) : '–'}</td>
              <td>{t.baselines ? `${percent(t.baselines.majority.accuracy)} ("${t.baselines.majority.answer}")` : '–'}</td>
              <td>{base ? <a href={`/evals/runs/${base.resultId}`}>{percent(base.accuracy)} ± {percent(base.stderr)}</a> : 'not scored'}</td>
            </tr>
          );
        })}</tbody>
      </table>
      <p data-testid="suite-baselines">
        Base model suite score: {board.base ? `${percent(board.base.score)} ± ${percent(board.base.stderr)}` : 'not scored yet'}
        {board.baselines && <> · trivial baselines: random {percent(board.baselines.random)}, majority {percent(board.baselines.majority)}</>}
        {board.general && <> · general suite: {board.general.displayName} v{board.general.version}, base {board.general.baseScore === null ? 'not scored' : percent(board.general.baseScore)}</>}
      </p>

      <form method="get" action="/evals/compare">
        <table data-testid="suite-leaderboard">
          <thead>
            <tr>
              <th>Compare</th><th>Rank</th><th><a href={sortLink('name')}>Adapter</a></th>
              {COLUMNS.map(([key, label]) => <th key={key}><a href={sortLink(key)}>{label}</a></th>)}
              <th>Contamination</th><th>Runs</th>
            </tr>
          </thead>
          <tbody>{board.entries.map((e) => (
            <tr key={e.adapterVersionId} data-testid="leaderboard-row">
              <td><input type="checkbox" name="v" value={`${e.adapter}@${e.version}`} aria-label={`compare ${e.adapter}@${e.version}`} /></td>
              <td>{e.rank}</td>
              <td><a href={`/${e.adapter}?version=${e.version}`}>{e.adapter}@{e.version}</a></td>
              <td>{percent(e.score)} ± {percent(e.stderr)}</td>
              <td data-testid="gain">{points(e.gain)}</td>
              <td data-testid="forgetting">{points(e.forgetting)}</td>
              <td>{e.trainableParameters === null ? '–' : `${e.trainableParameters.toLocaleString('en-US')} (${((e.shareOfBase ?? 0) * 100).toFixed(3)}%)`}</td>
              <td>{e.loraRank ?? '–'}</td>
              <td>{e.downloads}</td>
              <td>{e.contamination === null ? '–' : e.contamination.flagged
                ? <strong className="error" title={`flagged tasks: ${e.contamination.flaggedTasks.join(', ')}`}>flagged ({percent(e.contamination.maxOverlap)} of items)</strong>
                : `${percent(e.contamination.maxOverlap)} of items`}</td>
              <td>{e.tasks.map((t) => <a key={t.taskId} href={`/evals/runs/${t.resultId}`} title={t.taskId}>{t.taskId} </a>)}</td>
            </tr>))}
          </tbody>
        </table>
        {board.entries.length === 0 && <p className="muted">No version has a comparable run of every task of this suite version yet.</p>}
        <p><button type="submit">Compare selected (2–4)</button></p>
      </form>

      <h2>Domain gain against general-suite change</h2>
      <GainChart data={chart} domain={board.suite.displayName} general={board.general?.displayName ?? 'general'} />

      {board.unranked.length > 0 && (
        <>
          <h2>Not comparable, not ranked</h2>
          <table data-testid="unranked">
            <thead><tr><th>Adapter</th><th>Why</th></tr></thead>
            <tbody>{board.unranked.map((u) => <tr key={u.adapterVersionId}><td><a href={`/${u.adapter}?version=${u.version}`}>{u.adapter}@{u.version}</a></td><td>{u.reason}</td></tr>)}</tbody>
          </table>
        </>
      )}

      {board.selfReported.length > 0 && (
        <>
          <h2>Self-reported scores (from model cards, not verified, never ranked)</h2>
          <table data-testid="self-reported">
            <thead><tr><th>Adapter</th><th>Data set</th><th>Metric</th><th>Value (self-reported)</th></tr></thead>
            <tbody>{board.selfReported.flatMap((s) => s.metrics.map((m, index) => (
              <tr key={`${s.adapter}-${s.version}-${index}`}><td>{s.adapter}@{s.version}</td><td>{m.dataset}</td><td>{m.metric}</td><td>{m.value} <span className="badge">self-reported</span></td></tr>
            )))}</tbody>
          </table>
        </>
      )}
    </>
  );
}
