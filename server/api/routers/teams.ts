import { z } from 'zod';
import { teamRoles } from '@/drizzle/schema';
import { listNamespaceTokens, revokeNamespaceToken } from '../../services/accounts';
import { listAudit, recordAudit } from '../../services/audit';
import {
  acceptInvitation, createInvitation, createTeam, getTeam, leaveTeam, listTeams, removeMember, revokeInvitation, setMemberRole, transferOwnership,
} from '../../services/teams';
import { namespaceProcedure, router, userProcedure } from '../trpc';

// Team settings are private: outsiders get NOT_FOUND, as for a team that does not exist.
const teamTarget = { from: 'namespace', field: 'team', private: true } as const;
const teamInput = z.object({ team: z.string().min(1).max(100) });
const email = z.string().email().max(320);

export const teamsRouter = router({
  create: userProcedure('write')
    .input(z.object({ name: z.string().min(1).max(100) }))
    .mutation(({ ctx, input }) => createTeam(ctx.db, { userId: ctx.user.id, name: input.name })),

  /** The caller's teams and its role in each. */
  mine: userProcedure('read').query(({ ctx }) => listTeams(ctx.db, ctx.user.id)),

  /** Members and open invitations of a team, for any member. */
  get: namespaceProcedure('read', 'viewer', teamTarget)
    .input(teamInput)
    .query(async ({ ctx }) => ({ ...(await getTeam(ctx.db, ctx.access)), role: ctx.access.role })),

  /** Creates an invitation link secret (shown once), valid for `expiresInHours` and for one person. */
  invite: namespaceProcedure('write', 'admin', teamTarget)
    .input(teamInput.extend({ role: z.enum(teamRoles).default('member'), expiresInHours: z.number().int().min(1).max(24 * 30).default(72) }))
    .mutation(({ ctx, input }) => createInvitation(ctx.db, { team: ctx.access, actorUserId: ctx.user.id, actorRole: ctx.access.role, role: input.role, expiresInHours: input.expiresInHours })),

  revokeInvitation: namespaceProcedure('write', 'admin', teamTarget)
    .input(teamInput.extend({ id: z.string().uuid() }))
    .mutation(({ ctx, input }) => revokeInvitation(ctx.db, { team: ctx.access, actorUserId: ctx.user.id, id: input.id })),

  /** Joins the team of an invitation link; the link then stops working. */
  accept: userProcedure('write')
    .input(z.object({ token: z.string().min(10).max(200) }))
    .mutation(({ ctx, input }) => acceptInvitation(ctx.db, { userId: ctx.user.id, token: input.token })),

  leave: namespaceProcedure('write', 'viewer', teamTarget)
    .input(teamInput)
    .mutation(({ ctx }) => leaveTeam(ctx.db, { team: ctx.access, userId: ctx.user.id })),

  removeMember: namespaceProcedure('write', 'admin', teamTarget)
    .input(teamInput.extend({ email }))
    .mutation(({ ctx, input }) => removeMember(ctx.db, { team: ctx.access, actorUserId: ctx.user.id, actorRole: ctx.access.role, email: input.email })),

  setRole: namespaceProcedure('write', 'admin', teamTarget)
    .input(teamInput.extend({ email, role: z.enum(teamRoles) }))
    .mutation(({ ctx, input }) => setMemberRole(ctx.db, { team: ctx.access, actorUserId: ctx.user.id, actorRole: ctx.access.role, email: input.email, role: input.role })),

  /** Makes another member the owner; the caller stays as an admin. */
  transferOwnership: namespaceProcedure('write', 'owner', teamTarget)
    .input(teamInput.extend({ email }))
    .mutation(({ ctx, input }) => transferOwnership(ctx.db, { team: ctx.access, actorUserId: ctx.user.id, email: input.email })),

  /** API tokens that members limited to this team, for its admins to review. */
  tokens: namespaceProcedure('read', 'admin', teamTarget)
    .input(teamInput)
    .query(({ ctx }) => listNamespaceTokens(ctx.db, ctx.access.namespaceId)),

  /** Revokes a member's API token that is limited to this team. */
  revokeToken: namespaceProcedure('write', 'admin', teamTarget)
    .input(teamInput.extend({ id: z.string().uuid() }))
    .mutation(async ({ ctx, input }) => {
      const revoked = await revokeNamespaceToken(ctx.db, { namespaceId: ctx.access.namespaceId, id: input.id });
      await recordAudit(ctx.db, { namespaceId: ctx.access.namespaceId, actorUserId: ctx.user.id, action: 'token.revoke', target: revoked.prefix });
      return revoked;
    }),

  /** Publishing, deletion, membership and token actions in a namespace, newest first; for its admins. */
  auditLog: namespaceProcedure('read', 'admin', { from: 'namespace', field: 'namespace', private: true })
    .input(z.object({ namespace: z.string().min(1).max(100).optional(), before: z.number().int().positive().optional() }).optional())
    .query(({ ctx, input }) => listAudit(ctx.db, ctx.access.namespaceId, input?.before)),
});
