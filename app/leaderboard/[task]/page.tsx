import { TRPCError } from '@trpc/server';
import { notFound } from 'next/navigation';
import { serverCaller } from '@/lib/server-caller';

export const dynamic = 'force-dynamic';

const percent = (value: number) => `${(value * 100).toFixed(1)}%`;
const points = (value: number) => `${value >= 0 ? '+' : ''}${(value * 100).toFixed(1)} points`;

export default async function LeaderboardPage({ params }: { params: Promise<{ task: string }> }) {
  const { task } = await params;
  let board;
  try {
    board = await (await serverCaller()).evals.leaderboard({ taskId: task });
  } catch (error) {
    if (error instanceof TRPCError && error.code === 'NOT_FOUND') notFound();
    throw error;
  }
  return (
    <>
      <h1>{board.task.displayName}</h1>
      <p className="muted">{board.task.description}</p>
      {board.task.baselines && (
        <p data-testid="baselines">Trivial baselines over the task&apos;s {board.task.itemCount} items: random choice {percent(board.task.baselines.random)};
          always &ldquo;{board.task.baselines.majority.answer}&rdquo; {percent(board.task.baselines.majority.accuracy)}
          {board.task.baselines.majority.macroF1 !== undefined && board.task.baselines.randomMacroF1 !== undefined && (
            <> (macro-F1: random {percent(board.task.baselines.randomMacroF1)}, always &ldquo;{board.task.baselines.majority.answer}&rdquo; {percent(board.task.baselines.majority.macroF1)})</>
          )}. Runs on fewer items are compared with the base model on the same items.</p>
      )}
      <h2>Base models</h2>
      <table>
        <thead><tr><th>Base model</th><th>Accuracy</th><th>Macro-F1</th><th>Correct / total</th><th>Few-shot, seed, harness</th></tr></thead>
        <tbody>{board.baseScores.map((b) => (
          <tr key={`${b.baseModelId}-${b.configHash}-${b.harnessVersion}`}>
            <td>{b.baseModelId}</td><td>{percent(b.accuracy)} ± {percent(b.stderr)}</td><td>{b.macroF1 === null ? '–' : percent(b.macroF1)}</td>
            <td>{b.correct} / {b.total}</td><td>{b.numFewshot}-shot, seed {b.seed ?? '–'}, lm_eval {b.harnessVersion ?? '–'}</td>
          </tr>))}
        </tbody>
      </table>
      <h2>Adapters</h2>
      <table data-testid="leaderboard">
        <thead><tr><th>Rank</th><th>Adapter</th><th>Accuracy</th><th>Macro-F1</th><th>Correct / total</th><th>Base model</th><th>Difference</th><th>Run</th></tr></thead>
        <tbody>{board.entries.map((e) => (
          <tr key={e.adapterVersionId}>
            <td>{e.rank}</td>
            <td><a href={`/${e.adapter}?version=${e.version}`}>{e.adapter} v{e.version}</a></td>
            <td>{percent(e.accuracy)} ± {percent(e.stderr)}</td>
            <td>{e.macroF1 === null ? '–' : `${percent(e.macroF1)}${e.macroF1Difference === null ? '' : ` (${points(e.macroF1Difference)})`}`}</td>
            <td>{e.correct} / {e.total}</td>
            <td>{e.base ? `${percent(e.base.accuracy)} (${e.base.correct} / ${e.base.total})` : 'not scored'}</td>
            <td>{e.difference === null ? '–' : points(e.difference)}</td>
            <td><a href={`/evals/runs/${e.resultId}`}>details</a></td>
          </tr>))}
        </tbody>
      </table>
    </>
  );
}
