import { and, asc, eq, gt, isNull, sql } from 'drizzle-orm';
import { namespaces, teamInvitations, teamMembers, users, type TeamRole } from '@/drizzle/schema';
import { hashToken, newTokenSecret } from '../auth';
import type { Db } from '../db';
import { logger } from '../logger';
import { NAMESPACE_NAME } from './accounts';
import { recordAudit } from './audit';
import { badRequest, conflict, notFound } from './errors';

export const INVITATION_PREFIX = 'ami_';
type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

/** The team namespace an action addresses; team actions on a personal namespace are rejected. */
export interface TeamRef {
  namespaceId: string;
  namespace: string;
  kind: 'user' | 'team';
}

function requireTeam(team: TeamRef): void {
  if (team.kind !== 'team') throw badRequest(`${team.namespace} is a personal namespace; members and invitations exist only for teams`);
}

/** Creates a team namespace with the caller as its owner. */
export async function createTeam(db: Db, input: { userId: string; name: string }) {
  if (!NAMESPACE_NAME.test(input.name)) {
    throw badRequest(`team name ${JSON.stringify(input.name)} is invalid; use 2-39 lowercase letters, digits or dashes, starting with a letter or digit`);
  }
  const created = await db.transaction(async (tx) => {
    const [namespace] = await tx.insert(namespaces).values({ name: input.name, kind: 'team' }).onConflictDoNothing().returning({ id: namespaces.id });
    if (!namespace) throw conflict(`namespace ${input.name} is taken; pick another team name`);
    await tx.insert(teamMembers).values({ namespaceId: namespace.id, userId: input.userId, role: 'owner' });
    return namespace;
  });
  await recordAudit(db, { namespaceId: created.id, actorUserId: input.userId, action: 'team.create', target: input.name });
  return { namespace: input.name };
}

/** Lists the teams the user belongs to, with the user's role in each. */
export async function listTeams(db: Db, userId: string) {
  return db.select({ namespace: namespaces.name, role: teamMembers.role, joinedAt: teamMembers.createdAt })
    .from(teamMembers).innerJoin(namespaces, eq(namespaces.id, teamMembers.namespaceId))
    .where(eq(teamMembers.userId, userId)).orderBy(asc(namespaces.name));
}

/** Returns a team's members and its open invitations. */
export async function getTeam(db: Db, team: TeamRef) {
  requireTeam(team);
  const members = await db.select({ email: users.email, role: teamMembers.role, joinedAt: teamMembers.createdAt })
    .from(teamMembers).innerJoin(users, eq(users.id, teamMembers.userId))
    .where(eq(teamMembers.namespaceId, team.namespaceId)).orderBy(asc(teamMembers.createdAt));
  const invitations = await db.select({ id: teamInvitations.id, role: teamInvitations.role, expiresAt: teamInvitations.expiresAt, createdAt: teamInvitations.createdAt })
    .from(teamInvitations)
    .where(and(eq(teamInvitations.namespaceId, team.namespaceId), isNull(teamInvitations.acceptedAt), isNull(teamInvitations.revokedAt), gt(teamInvitations.expiresAt, sql`now()`)))
    .orderBy(asc(teamInvitations.createdAt));
  return { namespace: team.namespace, members, invitations };
}

/**
 * Creates a single-use invitation link secret, valid for `expiresInHours`. Only an owner may
 * invite another owner. The secret is returned once; only its sha256 is stored.
 */
export async function createInvitation(db: Db, input: { team: TeamRef; actorUserId: string; actorRole: TeamRole; role: TeamRole; expiresInHours: number }) {
  requireTeam(input.team);
  if (input.role === 'owner' && input.actorRole !== 'owner') throw badRequest('only an owner may invite another owner; invite as admin and let an owner promote them');
  const secret = newTokenSecret(INVITATION_PREFIX);
  const expiresAt = new Date(Date.now() + input.expiresInHours * 3600_000);
  const [row] = await db.insert(teamInvitations).values({
    namespaceId: input.team.namespaceId, role: input.role, tokenHash: secret.hash, createdBy: input.actorUserId, expiresAt,
  }).returning({ id: teamInvitations.id });
  await recordAudit(db, { namespaceId: input.team.namespaceId, actorUserId: input.actorUserId, action: 'invitation.create', target: row!.id, details: { role: input.role, expiresAt } });
  return { id: row!.id, token: secret.secret, expiresAt };
}

export async function revokeInvitation(db: Db, input: { team: TeamRef; actorUserId: string; id: string }) {
  const [revoked] = await db.update(teamInvitations).set({ revokedAt: sql`now()` })
    .where(and(eq(teamInvitations.id, input.id), eq(teamInvitations.namespaceId, input.team.namespaceId), isNull(teamInvitations.acceptedAt), isNull(teamInvitations.revokedAt)))
    .returning({ id: teamInvitations.id });
  if (!revoked) throw notFound(`open invitation ${input.id} of ${input.team.namespace}`);
  await recordAudit(db, { namespaceId: input.team.namespaceId, actorUserId: input.actorUserId, action: 'invitation.revoke', target: input.id });
  return { id: revoked.id };
}

/**
 * Joins the team of an invitation. The conditional update claims the invitation, so a link
 * works once even when two people open it at the same moment.
 */
export async function acceptInvitation(db: Db, input: { userId: string; token: string }) {
  const joined = await db.transaction(async (tx) => {
    const [invitation] = await tx.update(teamInvitations).set({ acceptedAt: sql`now()`, acceptedBy: input.userId })
      .where(and(eq(teamInvitations.tokenHash, hashToken(input.token)), isNull(teamInvitations.acceptedAt), isNull(teamInvitations.revokedAt), gt(teamInvitations.expiresAt, sql`now()`)))
      .returning({ namespaceId: teamInvitations.namespaceId, role: teamInvitations.role });
    if (!invitation) throw notFound('invitation (it may have expired, been used or been revoked; ask a team admin for a new link)');
    const [existing] = await tx.select({ role: teamMembers.role }).from(teamMembers)
      .where(and(eq(teamMembers.namespaceId, invitation.namespaceId), eq(teamMembers.userId, input.userId))).limit(1);
    if (existing) throw conflict(`you are already a member of this team (role ${existing.role})`);
    await tx.insert(teamMembers).values({ namespaceId: invitation.namespaceId, userId: input.userId, role: invitation.role });
    const [team] = await tx.select({ name: namespaces.name }).from(namespaces).where(eq(namespaces.id, invitation.namespaceId));
    return { namespaceId: invitation.namespaceId, namespace: team!.name, role: invitation.role };
  });
  await recordAudit(db, { namespaceId: joined.namespaceId, actorUserId: input.userId, action: 'member.join', target: await emailOf(db, input.userId), details: { role: joined.role } });
  return { namespace: joined.namespace, role: joined.role };
}

async function emailOf(db: Db | Tx, userId: string): Promise<string> {
  const [row] = await db.select({ email: users.email }).from(users).where(eq(users.id, userId));
  return row?.email ?? userId;
}

/** Locks the team's member rows and returns them, so owner counts stay right under concurrency. */
async function lockMembers(tx: Tx, namespaceId: string) {
  return tx.select({ userId: teamMembers.userId, role: teamMembers.role, email: users.email })
    .from(teamMembers).innerJoin(users, eq(users.id, teamMembers.userId))
    .where(eq(teamMembers.namespaceId, namespaceId)).for('update', { of: teamMembers });
}

function onlyOwner(members: { userId: string; role: TeamRole }[], userId: string): boolean {
  const owners = members.filter((member) => member.role === 'owner');
  return owners.length === 1 && owners[0]!.userId === userId;
}

/** Leaves a team; the last owner must transfer ownership first. */
export async function leaveTeam(db: Db, input: { team: TeamRef; userId: string }) {
  requireTeam(input.team);
  const email = await db.transaction(async (tx) => {
    const members = await lockMembers(tx, input.team.namespaceId);
    const me = members.find((member) => member.userId === input.userId);
    if (!me) throw notFound(`your membership in ${input.team.namespace}`);
    if (onlyOwner(members, input.userId)) throw conflict(`you are the only owner of ${input.team.namespace}; transfer ownership to another member before leaving`);
    await tx.delete(teamMembers).where(and(eq(teamMembers.namespaceId, input.team.namespaceId), eq(teamMembers.userId, input.userId)));
    return me.email;
  });
  await recordAudit(db, { namespaceId: input.team.namespaceId, actorUserId: input.userId, action: 'member.leave', target: email });
  return { left: input.team.namespace };
}

/** Removes a member. Admins remove admins, members and viewers; only an owner removes an owner, never the last one. */
export async function removeMember(db: Db, input: { team: TeamRef; actorUserId: string; actorRole: TeamRole; email: string }) {
  requireTeam(input.team);
  await db.transaction(async (tx) => {
    const members = await lockMembers(tx, input.team.namespaceId);
    const target = members.find((member) => member.email === input.email.toLowerCase());
    if (!target) throw notFound(`member ${input.email} of ${input.team.namespace}`);
    if (target.role === 'owner' && input.actorRole !== 'owner') throw badRequest(`${input.email} is an owner; only an owner may remove an owner`);
    if (onlyOwner(members, target.userId)) throw conflict(`${input.email} is the only owner of ${input.team.namespace}; make another member owner first`);
    await tx.delete(teamMembers).where(and(eq(teamMembers.namespaceId, input.team.namespaceId), eq(teamMembers.userId, target.userId)));
  });
  await recordAudit(db, { namespaceId: input.team.namespaceId, actorUserId: input.actorUserId, action: 'member.remove', target: input.email.toLowerCase() });
  return { removed: input.email.toLowerCase() };
}

/** Changes a member's role. Only an owner grants or takes away the owner role, and the last owner keeps it. */
export async function setMemberRole(db: Db, input: { team: TeamRef; actorUserId: string; actorRole: TeamRole; email: string; role: TeamRole }) {
  requireTeam(input.team);
  const previous = await db.transaction(async (tx) => {
    const members = await lockMembers(tx, input.team.namespaceId);
    const target = members.find((member) => member.email === input.email.toLowerCase());
    if (!target) throw notFound(`member ${input.email} of ${input.team.namespace}`);
    if ((target.role === 'owner' || input.role === 'owner') && input.actorRole !== 'owner') throw badRequest('only an owner may grant or take away the owner role');
    if (input.role !== 'owner' && onlyOwner(members, target.userId)) throw conflict(`${input.email} is the only owner of ${input.team.namespace}; make another member owner first`);
    await tx.update(teamMembers).set({ role: input.role }).where(and(eq(teamMembers.namespaceId, input.team.namespaceId), eq(teamMembers.userId, target.userId)));
    return target.role;
  });
  await recordAudit(db, { namespaceId: input.team.namespaceId, actorUserId: input.actorUserId, action: 'member.role', target: input.email.toLowerCase(), details: { from: previous, to: input.role } });
  return { email: input.email.toLowerCase(), role: input.role };
}

/** Makes another member the owner; the previous owner stays as an admin. */
export async function transferOwnership(db: Db, input: { team: TeamRef; actorUserId: string; email: string }) {
  requireTeam(input.team);
  await db.transaction(async (tx) => {
    const members = await lockMembers(tx, input.team.namespaceId);
    const target = members.find((member) => member.email === input.email.toLowerCase());
    if (!target) throw notFound(`member ${input.email} of ${input.team.namespace}; invite them first`);
    if (target.userId === input.actorUserId) throw badRequest('you already own this team; name another member');
    await tx.update(teamMembers).set({ role: 'owner' }).where(and(eq(teamMembers.namespaceId, input.team.namespaceId), eq(teamMembers.userId, target.userId)));
    await tx.update(teamMembers).set({ role: 'admin' }).where(and(eq(teamMembers.namespaceId, input.team.namespaceId), eq(teamMembers.userId, input.actorUserId)));
  });
  logger.info({ namespace: input.team.namespace }, 'team ownership transferred');
  await recordAudit(db, { namespaceId: input.team.namespaceId, actorUserId: input.actorUserId, action: 'team.transfer', target: input.email.toLowerCase() });
  return { owner: input.email.toLowerCase() };
}
