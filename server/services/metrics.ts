import { sql } from 'drizzle-orm';
import { renderPrometheus, type Sample } from '@/lib/prometheus';
import type { Db } from '../db';

// Durations and queue waits are summarised over jobs that ended (or started) this recently.
const WINDOW_HOURS = 24;

type Row = Record<string, unknown>;

async function rows(db: Db, query: ReturnType<typeof sql>): Promise<Row[]> {
  const result = (await db.execute(query)) as unknown as { rows?: Row[] } | Row[];
  return Array.isArray(result) ? result : result.rows ?? [];
}

function summary(name: string, labels: Record<string, string>, row: Row): Sample[] {
  return [
    { name, labels: { ...labels, quantile: '0.5' }, value: Number(row.p50 ?? NaN) },
    { name, labels: { ...labels, quantile: '0.95' }, value: Number(row.p95 ?? NaN) },
    { name: `${name}_sum`, labels, value: Number(row.total ?? 0) },
    { name: `${name}_count`, labels, value: Number(row.count ?? 0) },
  ];
}

/**
 * Collects the app's job metrics from the database: jobs by state, queue wait and duration
 * quantiles over the last day, lease expirations, and how long ago each runner was heard from.
 */
export async function appMetrics(db: Db): Promise<string> {
  const byState = await rows(db, sql`select kind, state, count(*)::int as n from jobs group by kind, state order by kind, state`);
  const waits = await rows(db, sql`
    select kind, count(*)::int as count,
      sum(extract(epoch from started_at - created_at))::float8 as total,
      percentile_cont(0.5) within group (order by extract(epoch from started_at - created_at))::float8 as p50,
      percentile_cont(0.95) within group (order by extract(epoch from started_at - created_at))::float8 as p95
    from jobs where started_at > now() - make_interval(hours => ${WINDOW_HOURS}) group by kind`);
  const durations = await rows(db, sql`
    select kind, state, count(*)::int as count,
      sum(extract(epoch from finished_at - started_at))::float8 as total,
      percentile_cont(0.5) within group (order by extract(epoch from finished_at - started_at))::float8 as p50,
      percentile_cont(0.95) within group (order by extract(epoch from finished_at - started_at))::float8 as p95
    from jobs where finished_at > now() - make_interval(hours => ${WINDOW_HOURS}) and started_at is not null group by kind, state`);
  const [expired] = await rows(db, sql`select count(*)::int as n from job_events where type = 'state' and payload->>'reason' = 'lease expired'`);
  const runnerLag = await rows(db, sql`
    select name, id::text as id, extract(epoch from now() - last_seen_at)::float8 as lag
    from runners where last_seen_at > now() - interval '1 hour' order by name`);

  return renderPrometheus([
    {
      name: 'adapters_jobs', help: 'Jobs by kind and state.', type: 'gauge',
      samples: byState.map((row) => ({ name: 'adapters_jobs', labels: { kind: String(row.kind), state: String(row.state) }, value: Number(row.n) })),
    },
    {
      name: 'adapters_job_queue_wait_seconds', help: `Seconds from job creation to its first start, jobs started in the last ${WINDOW_HOURS} h.`, type: 'summary',
      samples: waits.flatMap((row) => summary('adapters_job_queue_wait_seconds', { kind: String(row.kind) }, row)),
    },
    {
      name: 'adapters_job_duration_seconds', help: `Seconds from first start to the end, jobs ended in the last ${WINDOW_HOURS} h.`, type: 'summary',
      samples: durations.flatMap((row) => summary('adapters_job_duration_seconds', { kind: String(row.kind), state: String(row.state) }, row)),
    },
    {
      name: 'adapters_job_lease_expirations_total', help: 'Leases that ran out, sending a job back to the queue or failing it.', type: 'counter',
      samples: [{ name: 'adapters_job_lease_expirations_total', value: Number(expired?.n ?? 0) }],
    },
    {
      name: 'adapters_runner_heartbeat_lag_seconds', help: 'Seconds since each runner seen in the last hour last claimed or sent a heartbeat.', type: 'gauge',
      samples: runnerLag.map((row) => ({ name: 'adapters_runner_heartbeat_lag_seconds', labels: { runner: String(row.name), id: String(row.id) }, value: Number(row.lag) })),
    },
  ]);
}
