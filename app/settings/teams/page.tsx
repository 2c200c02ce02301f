'use client';

import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTRPC } from '@/lib/trpc-react';

const ROLES = ['viewer', 'member', 'admin', 'owner'] as const;
type Role = (typeof ROLES)[number];

/** Team settings: create a team, then manage its members, invitation links and audit log. */
export default function TeamsPage() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const mine = useQuery(trpc.teams.mine.queryOptions());
  const [selected, setSelected] = useState<string | null>(null);
  const create = useMutation(trpc.teams.create.mutationOptions({ onSuccess: (team) => { setSelected(team.namespace); void queryClient.invalidateQueries(); } }));

  if (mine.error) return <p className="error">{mine.error.message} <a href="/signin">Sign in</a></p>;
  return (
    <>
      <h1>Teams</h1>
      <div className="card">
        <table>
          <thead><tr><th>Team</th><th>Your role</th></tr></thead>
          <tbody>{mine.data?.map((team) => (
            <tr key={team.namespace}>
              <td><button type="button" className="link" onClick={() => setSelected(team.namespace)}>{team.namespace}</button></td>
              <td>{team.role}</td>
            </tr>))}
          </tbody>
        </table>
        <form className="row" onSubmit={(event) => {
          event.preventDefault();
          create.mutate({ name: String(new FormData(event.currentTarget).get('name')) });
        }}>
          <input name="name" placeholder="New team name, e.g. med-lab" required />
          <button type="submit">Create team</button>
        </form>
        {create.error && <p className="error">{create.error.message}</p>}
      </div>
      {selected && <TeamSettings team={selected} />}
    </>
  );
}

function TeamSettings({ team }: { team: string }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const details = useQuery(trpc.teams.get.queryOptions({ team }));
  const refresh = { onSuccess: () => void queryClient.invalidateQueries() };
  const invite = useMutation(trpc.teams.invite.mutationOptions(refresh));
  const revoke = useMutation(trpc.teams.revokeInvitation.mutationOptions(refresh));
  const setRole = useMutation(trpc.teams.setRole.mutationOptions(refresh));
  const remove = useMutation(trpc.teams.removeMember.mutationOptions(refresh));
  const transfer = useMutation(trpc.teams.transferOwnership.mutationOptions(refresh));
  const leave = useMutation(trpc.teams.leave.mutationOptions(refresh));

  if (details.error) return <p className="error">{details.error.message}</p>;
  if (!details.data) return <p className="muted">Loading {team}…</p>;
  const manages = details.data.role === 'admin' || details.data.role === 'owner';
  const errors = [invite, revoke, setRole, remove, transfer, leave].map((m) => m.error?.message).filter(Boolean);
  const inviteLink = invite.data && `${window.location.origin}/settings/teams/join?token=${encodeURIComponent(invite.data.token)}`;

  return (
    <div className="card" data-testid="team-settings">
      <h2>{team}</h2>
      <p className="muted">Owners and admins publish and manage members and tokens; members also start jobs; viewers read private data sets and jobs.</p>
      <h3>Members</h3>
      <table>
        <thead><tr><th>Email</th><th>Role</th><th /></tr></thead>
        <tbody>{details.data.members.map((member) => (
          <tr key={member.email}>
            <td>{member.email}</td>
            <td>{manages
              ? <select value={member.role} onChange={(event) => setRole.mutate({ team, email: member.email, role: event.target.value as Role })}>
                  {ROLES.map((role) => <option key={role} value={role}>{role}</option>)}
                </select>
              : member.role}
            </td>
            <td>
              {manages && <button type="button" onClick={() => remove.mutate({ team, email: member.email })}>Remove</button>}
              {details.data.role === 'owner' && member.role !== 'owner' && <button type="button" onClick={() => transfer.mutate({ team, email: member.email })}>Make owner</button>}
            </td>
          </tr>))}
        </tbody>
      </table>
      <button type="button" onClick={() => leave.mutate({ team })}>Leave {team}</button>

      {manages && (
        <>
          <h3>Invitations</h3>
          <p className="muted">Each link works once and expires; send it to one person.</p>
          <form className="row" onSubmit={(event) => {
            event.preventDefault();
            const form = new FormData(event.currentTarget);
            invite.mutate({ team, role: String(form.get('role')) as Role, expiresInHours: Number(form.get('hours')) });
          }}>
            <select name="role" defaultValue="member">{ROLES.map((role) => <option key={role} value={role}>{role}</option>)}</select>
            <input name="hours" type="number" min={1} max={720} defaultValue={72} aria-label="Valid for hours" />
            <button type="submit">Create invitation link</button>
          </form>
          {inviteLink && <p>Invitation link (copy it now): <code data-testid="invite-link">{inviteLink}</code></p>}
          <table>
            <thead><tr><th>Role</th><th>Expires</th><th /></tr></thead>
            <tbody>{details.data.invitations.map((invitation) => (
              <tr key={invitation.id}>
                <td>{invitation.role}</td><td>{new Date(invitation.expiresAt).toLocaleString('en-GB')}</td>
                <td><button type="button" onClick={() => revoke.mutate({ team, id: invitation.id })}>Revoke</button></td>
              </tr>))}
            </tbody>
          </table>
          <TeamTokens team={team} />
          <AuditLog namespace={team} />
        </>
      )}
      {errors.map((message) => <p key={message} className="error">{message}</p>)}
    </div>
  );
}

/** Lists the API tokens members limited to this team, which its admins may revoke. */
function TeamTokens({ team }: { team: string }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const tokens = useQuery(trpc.teams.tokens.queryOptions({ team }));
  const revoke = useMutation(trpc.teams.revokeToken.mutationOptions({ onSuccess: () => void queryClient.invalidateQueries() }));
  if (tokens.error) return <p className="error">{tokens.error.message}</p>;
  return (
    <>
      <h3>Team tokens</h3>
      <table>
        <thead><tr><th>Holder</th><th>Name</th><th>Prefix</th><th>Scopes</th><th>Last used</th><th /></tr></thead>
        <tbody>{tokens.data?.map((token) => (
          <tr key={token.id}>
            <td>{token.holder}</td><td>{token.name}</td><td><code>{token.prefix}…</code></td><td>{token.scopes.join(', ')}</td>
            <td>{token.lastUsedAt ? new Date(token.lastUsedAt).toLocaleString('en-GB') : '—'}</td>
            <td>{token.revokedAt ? 'revoked' : <button type="button" onClick={() => revoke.mutate({ team, id: token.id })}>Revoke</button>}</td>
          </tr>))}
        </tbody>
      </table>
      {revoke.error && <p className="error">{revoke.error.message}</p>}
    </>
  );
}

/** Shows the namespace's audit log, newest first; readable by its admins and owners. */
function AuditLog({ namespace }: { namespace: string }) {
  const trpc = useTRPC();
  const log = useQuery(trpc.teams.auditLog.queryOptions({ namespace }));
  if (log.error) return <p className="error">{log.error.message}</p>;
  return (
    <>
      <h3>Audit log</h3>
      <table data-testid="audit-log">
        <thead><tr><th>When</th><th>Who</th><th>Action</th><th>Target</th></tr></thead>
        <tbody>{log.data?.entries.map((entry) => (
          <tr key={entry.id}>
            <td>{new Date(entry.createdAt).toLocaleString('en-GB')}</td><td>{entry.actor ?? 'system'}</td><td>{entry.action}</td><td>{entry.target}</td>
          </tr>))}
        </tbody>
      </table>
    </>
  );
}
