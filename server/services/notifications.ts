import { and, count, desc, eq, inArray, isNull, sql } from 'drizzle-orm';
import { adapters, adapterVersions, jobs, namespaces, notifications } from '@/drizzle/schema';
import type { Db } from '../db';
import { logger } from '../logger';
import { enqueueWebhook, kickWebhookDispatcher } from './webhooks';

const ENDED = ['succeeded', 'failed', 'cancelled'];

/** Returns the caller's 50 newest notifications and the number of unread ones. */
export async function listNotifications(db: Db, userId: string) {
  const items = await db.select({
    id: notifications.id, jobId: notifications.jobId, state: notifications.state, message: notifications.message,
    readAt: notifications.readAt, createdAt: notifications.createdAt,
  }).from(notifications).where(eq(notifications.userId, userId)).orderBy(desc(notifications.createdAt)).limit(50);
  const [unread] = await db.select({ value: count() }).from(notifications).where(and(eq(notifications.userId, userId), isNull(notifications.readAt)));
  return { unread: unread?.value ?? 0, items };
}

/** Marks the caller's notifications `ids` as read, or all of them when `ids` is absent. */
export async function markNotificationsRead(db: Db, userId: string, ids: string[] | undefined) {
  const marked = await db.update(notifications).set({ readAt: sql`now()` })
    .where(and(eq(notifications.userId, userId), isNull(notifications.readAt), ids ? inArray(notifications.id, ids) : undefined))
    .returning({ id: notifications.id });
  return { marked: marked.length };
}

function describeEnd(kind: string, name: string, state: string, error: { reason: string; message: string } | null, version: { namespace: string; name: string; version: number } | null) {
  const what = kind === 'finetune' ? `Fine-tune ${name}` : `Evaluation on ${name}`;
  if (state === 'succeeded') return version ? `${what} succeeded: published ${version.namespace}/${version.name} v${version.version}` : `${what} succeeded`;
  if (state === 'cancelled') return `${what} was cancelled`;
  return `${what} failed (${error?.reason ?? 'unknown'}): ${error?.message ?? 'no message'}`;
}

/**
 * Tells the user who started a job that it ended: an in-app notification and, when they set
 * one, a webhook delivery sent in the background. Callers run it after the job's final state
 * is stored; a job that has not ended is ignored. Errors are logged, never thrown, because the
 * job's outcome is already recorded and must not be reported as failed.
 */
export async function recordJobEnded(db: Db, jobId: string): Promise<void> {
  try {
    const [row] = await db.select({ job: jobs, namespace: namespaces.name }).from(jobs)
      .innerJoin(namespaces, eq(namespaces.id, jobs.namespaceId)).where(eq(jobs.id, jobId)).limit(1);
    if (!row || !row.job.createdBy || !ENDED.includes(row.job.state)) return;
    const { job } = row;
    const userId = row.job.createdBy;

    const params = job.params as { adapterName?: string; taskId?: string };
    const name = params.adapterName ?? params.taskId ?? job.id;
    let version: { id: number; namespace: string; name: string; version: number } | null = null;
    if (job.resultVersionId) {
      const [found] = await db.select({ id: adapterVersions.id, version: adapterVersions.version, name: adapters.name, namespace: namespaces.name }).from(adapterVersions)
        .innerJoin(adapters, eq(adapters.id, adapterVersions.adapterId)).innerJoin(namespaces, eq(namespaces.id, adapters.namespaceId))
        .where(eq(adapterVersions.id, job.resultVersionId)).limit(1);
      version = found ?? null;
    }

    const message = describeEnd(job.kind, name, job.state, job.error, version);
    await db.insert(notifications).values({ userId, jobId: job.id, state: job.state, message });

    const payload = {
      event: 'job.ended',
      job: { id: job.id, kind: job.kind, namespace: row.namespace, name, attempts: job.attempts, finishedAt: job.finishedAt?.toISOString() ?? null },
      state: job.state,
      error: job.error ?? null,
      adapterVersion: version,
    };
    if (await enqueueWebhook(db, { userId, jobId: job.id, event: 'job.ended', payload })) kickWebhookDispatcher(db);
  } catch (error) {
    logger.error({ err: error, jobId }, 'job end notification failed');
  }
}
