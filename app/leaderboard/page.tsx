import { serverCaller } from '@/lib/server-caller';

export const dynamic = 'force-dynamic';

export default async function LeaderboardsPage() {
  const caller = await serverCaller();
  const [tasks, suites] = await Promise.all([caller.evals.tasks(), caller.evals.suites()]);
  return (
    <>
      <h1>Leaderboards</h1>
      <h2>Suites</h2>
      {suites.length === 0 && <p className="muted">No benchmark suites are registered yet.</p>}
      <ul>{suites.map((s) => <li key={s.id}><a href={`/leaderboard/suites/${s.id}`}>{s.displayName}</a> <span className="muted">({s.domain}, {s.tasks.length} tasks, version {s.version})</span></li>)}</ul>
      <h2>Tasks</h2>
      {tasks.length === 0 && <p className="muted">No benchmark tasks are registered yet.</p>}
      <ul>{tasks.map((t) => <li key={t.id}><a href={`/leaderboard/${t.id}`}>{t.displayName}</a> <span className="muted">({t.domain}, {t.itemCount} items, version {t.version})</span></li>)}</ul>
    </>
  );
}
