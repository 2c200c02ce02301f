import { serverCaller } from '@/lib/server-caller';

export const dynamic = 'force-dynamic';

export default async function LeaderboardsPage() {
  const tasks = await (await serverCaller()).evals.tasks();
  return (
    <>
      <h1>Leaderboards</h1>
      {tasks.length === 0 && <p className="muted">No benchmark tasks are registered yet.</p>}
      <ul>{tasks.map((t) => <li key={t.id}><a href={`/leaderboard/${t.id}`}>{t.displayName}</a> <span className="muted">({t.domain}, {t.itemCount} items, version {t.version})</span></li>)}</ul>
    </>
  );
}
