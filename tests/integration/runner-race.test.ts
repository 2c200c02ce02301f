import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { TINY_BASE_ID, testEnv } from '../setup/env';
import { newUser, runCli, startExtraApp, startRunner, stopExtraApp, waitFor, writeAdapterFolder, type RunnerProcess } from '../setup/helpers';

const RUNNERS = 20;
const JOBS = 200;

/** Returns the job ids of the runner's "job claimed" JSON log lines. */
function claimedJobIds(runner: RunnerProcess): string[] {
  const ids: string[] = [];
  for (const line of runner.output.join('').split('\n')) {
    if (!line.includes('"job claimed"')) continue;
    ids.push((JSON.parse(line) as { jobId: string }).jobId);
  }
  return ids;
}

describe('runner fleet', () => {
  it(`${RUNNERS} runners racing for ${JOBS} short jobs run each exactly once`, async () => {
    const user = await newUser('race');
    const published = runCli(['publish', await writeAdapterFolder(), '--name', 'raced', '--base', TINY_BASE_ID], user.token);
    expect(published.status, published.stderr).toBe(0);

    // The shared test app leases jobs for 6 s (for the crash tests); 20 runners on two cores
    // can starve a heartbeat that long, so this fleet talks to an app with the default lease.
    const port = testEnv.APP_PORT + 8;
    const app = startExtraApp(port, {});
    const url = `http://127.0.0.1:${port}`;
    await waitFor('the fleet app', async () => (await fetch(`${url}/api/health`).catch(() => null))?.ok ?? false, 60_000);
    const runners = await Promise.all(Array.from({ length: RUNNERS }, (_, i) => startRunner(`racer-${i}`, { APP_URL: url })));
    const db = new pg.Client({ connectionString: testEnv.DATABASE_URL });
    await db.connect();
    try {
      // Jobs arrive once every runner has imported torch and polls, not while they start.
      await waitFor('every runner to be ready', async () => runners.every((runner) => runner.output.join('').includes('fork server ready')), 300_000, 1000);

      // Jobs arrive while all runners poll, so every claim competes with others.
      const jobIds: string[] = [];
      for (let i = 0; i < JOBS; i++) {
        const { jobId } = await user.client.evals.request.mutate({ namespace: user.namespace, name: 'raced', taskId: 'pubmedqa', limit: 1 });
        jobIds.push(jobId);
      }

      // Each evaluation job runs lm-evaluation-harness, about 10 s of CPU, so 200 of them take
      // about 20 minutes on two cores. The deadline leaves twice that.
      await waitFor('every job to end', async () => {
        const { rows } = await db.query<{ open: string }>(`select count(*) as open from jobs where id = any($1) and state not in ('succeeded', 'failed', 'cancelled')`, [jobIds]);
        return Number(rows[0]!.open) === 0;
      }, 2_400_000, 2000);

      const { rows: jobs } = await db.query<{ id: string; state: string; attempts: number; runner_id: string }>(
        'select id, state, attempts, runner_id from jobs where id = any($1)', [jobIds]);
      expect(jobs).toHaveLength(JOBS);
      expect(jobs.filter((job) => job.state !== 'succeeded')).toEqual([]);
      expect(jobs.filter((job) => job.attempts !== 1)).toEqual([]);

      // The worker started once per job, and the job entered `running` once.
      const { rows: counts } = await db.query<{ job_id: string; started: string; running: string }>(
        `select job_id, count(*) filter (where type = 'started') as started,
                count(*) filter (where type = 'state' and payload->>'state' = 'running') as running
           from job_events where job_id = any($1) group by job_id`, [jobIds]);
      expect(counts).toHaveLength(JOBS);
      expect(counts.filter((row) => Number(row.started) !== 1 || Number(row.running) !== 1)).toEqual([]);

      // Across all runner processes, each job was claimed by exactly one of them.
      const claims = runners.flatMap(claimedJobIds).filter((id) => jobIds.includes(id));
      expect(claims).toHaveLength(JOBS);
      expect(new Set(claims).size).toBe(JOBS);
      // The work spread over the fleet, so claims really raced.
      expect(new Set(jobs.map((job) => job.runner_id)).size).toBeGreaterThanOrEqual(RUNNERS / 2);
    } finally {
      await db.end();
      await Promise.all(runners.map((runner) => runner.stop()));
      await stopExtraApp(app);
    }
  }, 3_000_000);
});
