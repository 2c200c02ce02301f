import { count, inArray } from 'drizzle-orm';
import { jobs } from '@/drizzle/schema';
import type { Db } from './db';

export interface QueueCounts {
  // Jobs waiting for a runner.
  queued: number;
  // Jobs a runner has claimed. A job whose lease ran out still counts until the queue next
  // reclaims it (at the next claim or read of the job).
  running: number;
}

/** Counts queued and running jobs of every kind (fine-tunes and evaluations). */
export async function queueCounts(db: Db): Promise<QueueCounts> {
  const rows = await db.select({ state: jobs.state, jobs: count() }).from(jobs).where(inArray(jobs.state, ['queued', 'running'])).groupBy(jobs.state);
  const counts: QueueCounts = { queued: 0, running: 0 };
  for (const row of rows) counts[row.state as keyof QueueCounts] = Number(row.jobs);
  return counts;
}

/** Formats queue counts in the Prometheus text exposition format (version 0.0.4). */
export function prometheusText(counts: QueueCounts): string {
  return [
    '# HELP adapters_jobs_queued Jobs waiting for a runner.',
    '# TYPE adapters_jobs_queued gauge',
    `adapters_jobs_queued ${counts.queued}`,
    '# HELP adapters_jobs_running Jobs claimed by a runner.',
    '# TYPE adapters_jobs_running gauge',
    `adapters_jobs_running ${counts.running}`,
    '# HELP adapters_jobs_backlog Jobs queued or running: the number of runners that have work.',
    '# TYPE adapters_jobs_backlog gauge',
    `adapters_jobs_backlog ${counts.queued + counts.running}`,
    '',
  ].join('\n');
}
