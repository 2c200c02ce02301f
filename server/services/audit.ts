import { and, desc, eq, lt } from 'drizzle-orm';
import { auditLog, users } from '@/drizzle/schema';
import type { Db } from '../db';
import { logger } from '../logger';

export const auditActions = [
  'adapter.publish', 'adapter.yank', 'adapter.deprecate', 'adapter.delete', 'adapter.restore', 'adapter.rename', 'adapter.visibility',
  'team.create', 'member.join', 'member.leave', 'member.remove', 'member.role', 'team.transfer',
  'invitation.create', 'invitation.revoke', 'token.create', 'token.revoke',
] as const;
export type AuditAction = (typeof auditActions)[number];

/**
 * Appends one entry to the audit log. `target` is readable on its own (`team/adapter`, a
 * member's email, a token prefix); never pass a secret in it or in `details`.
 */
export async function recordAudit(db: Db, entry: { namespaceId: string | null; actorUserId: string | null; action: AuditAction; target: string; details?: Record<string, unknown> }) {
  await db.insert(auditLog).values({ ...entry, details: entry.details ?? {} });
  logger.info({ namespaceId: entry.namespaceId, actorUserId: entry.actorUserId, action: entry.action, target: entry.target }, 'audit');
}

/** Returns a namespace's audit entries, newest first, 100 at a time; pass `nextCursor` back as `before`. */
export async function listAudit(db: Db, namespaceId: string, before?: number) {
  const rows = await db.select({
    id: auditLog.id, action: auditLog.action, target: auditLog.target, details: auditLog.details, createdAt: auditLog.createdAt, actor: users.email,
  }).from(auditLog).leftJoin(users, eq(users.id, auditLog.actorUserId))
    .where(and(eq(auditLog.namespaceId, namespaceId), before ? lt(auditLog.id, before) : undefined))
    .orderBy(desc(auditLog.id)).limit(100);
  return { entries: rows, nextCursor: rows.length === 100 ? rows[rows.length - 1]!.id : null };
}
