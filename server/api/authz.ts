import { TRPCError } from '@trpc/server';
import { and, eq, isNull, sql } from 'drizzle-orm';
import { adapters, datasets, datasetVersions, jobs, namespaces, teamMembers, type TeamRole } from '@/drizzle/schema';
import type { SessionUser } from '../auth';
import type { Db } from '../db';
import { findAdapter } from '../services/adapters';

export const SCOPES = ['read', 'write', 'fine-tune', 'evaluate', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** Roles from weakest to strongest; a rule that needs a role accepts every stronger one. */
export const ROLE_ORDER: readonly TeamRole[] = ['viewer', 'member', 'admin', 'owner'];

export function roleAtLeast(role: TeamRole | null, needed: TeamRole): boolean {
  return role !== null && ROLE_ORDER.indexOf(role) >= ROLE_ORDER.indexOf(needed);
}

/**
 * Where a namespace rule finds the namespace it checks, read from the procedure's raw input:
 * - `namespace`: the namespace named by `field` (the caller's own namespace when it is absent);
 * - `adapter`: the namespace that holds the adapter `namespace`/`name` (the caller's own
 *   namespace when `namespace` is absent). With `redirects`, an old name follows its redirect
 *   to the adapter's current namespace; an adapter that is deleted or not yet published falls
 *   back to the namespace by name;
 * - `job`, `datasetVersion`: the namespace that owns the job or data set version whose id is in `field`.
 * `private` targets return NOT_FOUND to callers without a role, so outsiders cannot tell
 * whether the thing exists. Public ones (public adapters, namespaces to publish to) return
 * FORBIDDEN. An adapter target that names a private adapter returns NOT_FOUND like a private target.
 */
export type Target =
  | { from: 'namespace'; field: string; private: boolean }
  | { from: 'adapter'; redirects: boolean }
  | { from: 'job'; field: string }
  | { from: 'datasetVersion'; field: string };

/** How a procedure is authorized. Every procedure of the AppRouter carries exactly one. */
export type Rule =
  | { kind: 'public' }
  // Any signed-in caller whose token has `scope`; the handler acts on the caller's own things.
  // NOTE: a token's namespace and adapter limits do not apply here, so a limited token may
  // still upload, like, create or join teams, and request evaluations in its user's namespace.
  | { kind: 'user'; scope: Scope }
  // Signed in, `scope` on the token, and at least `role` in the target's namespace.
  | { kind: 'namespace'; scope: Scope; role: TeamRole; target: Target }
  // A site administrator (the first account of an installation, or one it promoted).
  | { kind: 'admin' }
  | { kind: 'runner' };

/** Describes a rule in a few words, for errors, logs and the authorization matrix. */
export function describeRule(rule: Rule): string {
  switch (rule.kind) {
    case 'public': return 'public';
    case 'user': return `user:${rule.scope}`;
    case 'namespace': return `role:${rule.role}:${rule.scope}:${rule.target.from}`;
    case 'admin': return 'admin';
    case 'runner': return 'runner';
  }
}

/** The caller as authorization sees it; a subset of the tRPC context. */
export interface Caller {
  db: Db;
  user: SessionUser | null;
  // Scopes of the API token, or null for a browser session (which has every scope).
  scopes: string[] | null;
  // Limits of the API token: one namespace, or chosen adapters; null means no limit.
  tokenNamespaceId: string | null;
  tokenAdapterIds: string[] | null;
  runnerTokenId: string | null;
}

/** What a namespace rule resolved: the handler acts in this namespace, with this role. */
export interface Access {
  namespaceId: string;
  namespace: string;
  kind: 'user' | 'team';
  role: TeamRole;
  // The adapter a rule with an `adapter` target names, when it exists (deleted ones included).
  adapterId: string | null;
}

const SIGN_IN = 'sign in or pass an API token as `Authorization: Bearer amk_…`';

function unauthorized(message: string): TRPCError {
  return new TRPCError({ code: 'UNAUTHORIZED', message });
}

function forbidden(message: string): TRPCError {
  return new TRPCError({ code: 'FORBIDDEN', message });
}

function hidden(what: string): TRPCError {
  return new TRPCError({ code: 'NOT_FOUND', message: `${what} not found` });
}

/**
 * Returns the caller's role in a namespace, or null for none. The caller owns its personal
 * namespace, and a site administrator counts as an admin of every namespace. A token limited
 * to another namespace has no role here, whatever its user's role.
 */
export async function roleIn(caller: Caller, namespaceId: string): Promise<TeamRole | null> {
  const user = caller.user;
  if (!user) return null;
  if (caller.tokenNamespaceId && caller.tokenNamespaceId !== namespaceId) return null;
  if (namespaceId === user.namespaceId) return 'owner';
  const [membership] = await caller.db.select({ role: teamMembers.role }).from(teamMembers)
    .where(and(eq(teamMembers.namespaceId, namespaceId), eq(teamMembers.userId, user.id))).limit(1);
  if (membership) return membership.role;
  return user.isAdmin ? 'admin' : null;
}

function field(input: unknown, name: string): unknown {
  return input && typeof input === 'object' ? (input as Record<string, unknown>)[name] : undefined;
}

function stringField(input: unknown, name: string, required: boolean): string | undefined {
  const value = field(input, name);
  if (value === undefined && !required) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > 200) {
    throw new TRPCError({ code: 'BAD_REQUEST', message: `invalid input: ${name}: expected a non-empty string of at most 200 characters` });
  }
  return value;
}

async function namespaceByName(db: Db, name: string) {
  const [row] = await db.select({ id: namespaces.id, name: namespaces.name, kind: namespaces.kind }).from(namespaces).where(eq(namespaces.name, name)).limit(1);
  return row ?? null;
}

async function namespaceById(db: Db, id: string) {
  const [row] = await db.select({ id: namespaces.id, name: namespaces.name, kind: namespaces.kind }).from(namespaces).where(eq(namespaces.id, id)).limit(1);
  return row!;
}

/** Finds the namespace a target names; `namespace` is null when the named thing does not exist. */
async function resolveTarget(caller: Caller & { user: SessionUser }, target: Target, input: unknown) {
  const db = caller.db;
  switch (target.from) {
    case 'namespace': {
      const name = stringField(input, target.field, false) ?? caller.user.namespace;
      const found = await namespaceByName(db, name);
      return { namespace: found, adapterId: null, what: `namespace ${name}` };
    }
    case 'adapter': {
      const namespace = stringField(input, 'namespace', false) ?? caller.user.namespace;
      const name = stringField(input, 'name', true)!;
      const what = `adapter ${namespace}/${name}`;
      if (target.redirects) {
        try {
          const found = await findAdapter(db, namespace, name, 'internal');
          return { namespace: await namespaceById(db, found.adapter.namespaceId), adapterId: found.adapter.id, what, privateAdapter: found.adapter.visibility === 'private' };
        } catch (error) {
          if (!(error instanceof TRPCError && error.code === 'NOT_FOUND')) throw error;
        }
      }
      const owner = await namespaceByName(db, namespace);
      if (!owner) return { namespace: null, adapterId: null, what: `namespace ${namespace}` };
      // A live adapter first; else the last deleted one, which keeps its id, so that a token
      // limited to it may still restore it.
      const [adapter] = await db.select({ id: adapters.id, visibility: adapters.visibility }).from(adapters)
        .where(and(eq(adapters.namespaceId, owner.id), eq(adapters.name, name), isNull(adapters.purgedAt)))
        .orderBy(sql`${adapters.deletedAt} desc nulls first`).limit(1);
      return { namespace: owner, adapterId: adapter?.id ?? null, what, privateAdapter: adapter?.visibility === 'private' };
    }
    case 'job': {
      const id = stringField(input, target.field, true)!;
      if (!/^[0-9a-f-]{36}$/i.test(id)) throw new TRPCError({ code: 'BAD_REQUEST', message: `invalid input: ${target.field}: ${JSON.stringify(id)} is not a job id (a UUID)` });
      const [job] = await db.select({ namespaceId: jobs.namespaceId }).from(jobs).where(eq(jobs.id, id)).limit(1);
      return { namespace: job ? await namespaceById(db, job.namespaceId) : null, adapterId: null, what: `job ${id}` };
    }
    case 'datasetVersion': {
      const id = field(input, target.field);
      if (typeof id !== 'number' || !Number.isInteger(id) || id <= 0) {
        throw new TRPCError({ code: 'BAD_REQUEST', message: `invalid input: ${target.field}: expected a data set version id (a positive integer)` });
      }
      const [version] = await db.select({ namespaceId: datasets.namespaceId }).from(datasetVersions)
        .innerJoin(datasets, eq(datasets.id, datasetVersions.datasetId)).where(eq(datasetVersions.id, id)).limit(1);
      return { namespace: version ? await namespaceById(db, version.namespaceId) : null, adapterId: null, what: `data set version ${id}` };
    }
  }
}

function isPrivate(target: Target): boolean {
  return target.from === 'job' || target.from === 'datasetVersion' || (target.from === 'namespace' && target.private);
}

/**
 * Checks `rule` for `caller` before the handler runs. Returns the resolved namespace access for
 * namespace rules and null otherwise. Throws UNAUTHORIZED without usable credentials, FORBIDDEN
 * for a caller without the right, and NOT_FOUND for private things of namespaces the caller
 * has no role in.
 */
export async function authorize(caller: Caller, rule: Rule, input: unknown): Promise<Access | null> {
  if (rule.kind === 'public') return null;
  if (rule.kind === 'runner') {
    if (!caller.runnerTokenId) throw unauthorized('runner procedures need a runner token (`Authorization: Bearer amr_…`)');
    return null;
  }

  const user = caller.user;
  if (!user) throw unauthorized(caller.runnerTokenId ? 'runner tokens may call only runner procedures; use an API token (amk_…) here' : SIGN_IN);
  if (rule.kind === 'admin') {
    if (!user.isAdmin) throw forbidden('only administrators may do this');
    if (caller.scopes && !caller.scopes.includes('admin')) throw forbidden('this API token lacks the "admin" scope; create an administrator token with it');
    if (caller.tokenNamespaceId || caller.tokenAdapterIds) throw forbidden('this API token is limited to a namespace or to adapters; administration needs a token without limits');
    return null;
  }
  if (caller.scopes && !caller.scopes.includes(rule.scope)) throw forbidden(`this API token lacks the "${rule.scope}" scope; create a token with it`);
  if (rule.kind === 'user') return null;

  const { namespace, adapterId, what, privateAdapter } = await resolveTarget({ ...caller, user }, rule.target, input);
  if (!namespace) throw hidden(what);
  const role = await roleIn(caller, namespace.id);
  if (!role) {
    if (isPrivate(rule.target) || privateAdapter) throw hidden(what);
    throw forbidden(`you have no role in namespace ${namespace.name}; ask one of its admins to invite you`);
  }
  if (!roleAtLeast(role, rule.role)) {
    throw forbidden(`your role in ${namespace.name} is ${role}; this needs ${rule.role} or higher, which a team admin can grant`);
  }
  if (caller.tokenAdapterIds) {
    if (rule.target.from !== 'adapter') throw forbidden('this API token is limited to chosen adapters; use a token without that limit');
    if (!adapterId || !caller.tokenAdapterIds.includes(adapterId)) throw forbidden(`this API token is not allowed to act on ${what}; create a token that includes it`);
  }
  return { namespaceId: namespace.id, namespace: namespace.name, kind: namespace.kind, role, adapterId };
}
