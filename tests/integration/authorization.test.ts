import { createHash, randomUUID } from 'node:crypto';
import { TRPCError } from '@trpc/server';
import { eq } from 'drizzle-orm';
import { beforeAll, describe, expect, it } from 'vitest';
import { adapters, blobs, datasets, datasetVersions, jobs, teamMembers, users, type TeamRole } from '@/drizzle/schema';
import { authorize, describeRule, roleAtLeast, type Rule, type Scope } from '@/server/api/authz';
import { appRouter, createCaller } from '@/server/api/root';
import { authorizeMiddleware, createContext, type Context } from '@/server/api/trpc';
import { getDb, type Db } from '@/server/db';
import { createApiToken, createRunnerToken, signUp } from '@/server/services/accounts';
import { createTeam } from '@/server/services/teams';
import { TINY_BASE_ID } from '../setup/env';

/**
 * The authorization matrix: every procedure of the AppRouter, its declared rule, and the
 * outcome of that rule for each kind of caller. Denials are checked through the real router
 * (createCaller on the test database), so they prove the rule runs before the handler.
 * Allowed calls are checked on the same `authorize` function the middleware runs, because
 * running their handlers would change the fixtures (delete the adapter, leave the team).
 *
 * A procedure added without a row here fails `every procedure has a row`.
 */

// Fixture names, unique per run because the test database is shared by the test files.
const run = randomUUID().slice(0, 6);
const TEAM = `matrix-${run}`;
const ADAPTER = 'matrix-adapter';

interface Fixtures { datasetVersionId: number; jobId: string }
type InputOf = (f: Fixtures) => unknown;

const uuid = '00000000-0000-4000-8000-000000000000';
const adapterRef = { namespace: TEAM, name: ADAPTER };
const adapterRefVersion = { ...adapterRef, version: 1 };
const lease = { jobId: uuid, leaseToken: 'x'.repeat(32) };

/** Expected rule and an input that names the team's fixtures, for every procedure. */
const MATRIX: Record<string, { rule: string; input: InputOf }> = {
  'auth.signUp': { rule: 'public', input: () => ({ email: 'x@example.com', password: 'x', namespace: 'x' }) },
  'auth.me': { rule: 'public', input: () => undefined },
  'auth.issueToken': { rule: 'public', input: () => ({}) },
  'auth.createToken': { rule: 'user:admin', input: () => ({ name: 'x' }) },
  'auth.tokens': { rule: 'user:read', input: () => undefined },
  'auth.revokeToken': { rule: 'user:admin', input: () => ({ id: uuid }) },
  'adapters.search': { rule: 'public', input: () => ({}) },
  'adapters.facets': { rule: 'public', input: () => ({}) },
  'adapters.get': { rule: 'public', input: () => adapterRef },
  'adapters.downloadUrl': { rule: 'public', input: () => ({ ...adapterRef, path: 'x' }) },
  'adapters.beginUpload': { rule: 'user:write', input: () => ({ files: [] }) },
  'adapters.publish': { rule: 'role:admin:write:adapter', input: () => ({ ...adapterRef, uploadId: uuid, baseModelId: TINY_BASE_ID }) },
  'adapters.yank': { rule: 'role:admin:write:adapter', input: () => ({ ...adapterRef, version: 1, reason: 'x' }) },
  'adapters.deprecate': { rule: 'role:admin:write:adapter', input: () => ({ ...adapterRef, message: 'x' }) },
  'adapters.delete': { rule: 'role:admin:write:adapter', input: () => adapterRef },
  'adapters.restore': { rule: 'role:admin:write:adapter', input: () => adapterRef },
  'adapters.rename': { rule: 'role:admin:write:adapter', input: () => ({ ...adapterRef, newName: 'x' }) },
  'adapters.like': { rule: 'user:write', input: () => ({ ...adapterRef, liked: true }) },
  'adapters.setVisibility': { rule: 'role:admin:write:adapter', input: () => ({ ...adapterRef, visibility: 'public' }) },
  'playground.save': { rule: 'user:write', input: () => ({ ...adapterRef, version: 1, prompt: 'x', temperature: 0, maxTokens: 1, seed: 1, baseOutput: '', adapterOutput: '' }) },
  'playground.saved': { rule: 'user:read', input: () => adapterRef },
  'baseModels.list': { rule: 'public', input: () => undefined },
  'baseModels.beginUpload': { rule: 'admin', input: () => ({ files: [] }) },
  'baseModels.register': { rule: 'admin', input: () => ({}) },
  'datasets.beginUpload': { rule: 'user:fine-tune', input: () => ({}) },
  'datasets.create': { rule: 'role:member:fine-tune:namespace', input: () => ({ namespace: TEAM, uploadId: uuid, name: 'x', baseModelId: TINY_BASE_ID }) },
  'datasets.get': { rule: 'role:viewer:read:datasetVersion', input: (f) => ({ id: f.datasetVersionId }) },
  'datasets.list': { rule: 'role:viewer:read:namespace', input: () => ({ namespace: TEAM }) },
  'datasets.derive': { rule: 'role:member:fine-tune:namespace', input: (f) => ({ namespace: TEAM, sourceVersionId: f.datasetVersionId, baseModelId: TINY_BASE_ID, maxSeqLength: 128, cleaning: {} }) },
  'datasets.hardware': { rule: 'public', input: () => undefined },
  'finetune.presets': { rule: 'public', input: () => undefined },
  'finetune.create': { rule: 'role:member:fine-tune:namespace', input: (f) => ({ namespace: TEAM, datasetVersionId: f.datasetVersionId }) },
  'finetune.get': { rule: 'role:viewer:read:job', input: (f) => ({ jobId: f.jobId }) },
  'finetune.list': { rule: 'role:viewer:read:namespace', input: () => ({ namespace: TEAM }) },
  'finetune.cancel': { rule: 'role:member:fine-tune:job', input: (f) => ({ jobId: f.jobId }) },
  'finetune.resume': { rule: 'role:member:fine-tune:job', input: (f) => ({ jobId: f.jobId }) },
  'finetune.logs': { rule: 'role:viewer:read:job', input: (f) => ({ jobId: f.jobId }) },
  'notifications.list': { rule: 'user:read', input: () => undefined },
  'notifications.markRead': { rule: 'user:read', input: () => ({}) },
  'webhooks.get': { rule: 'user:read', input: () => undefined },
  'webhooks.set': { rule: 'user:write', input: () => ({ url: 'https://example.com/hook' }) },
  'webhooks.delete': { rule: 'user:write', input: () => undefined },
  'evals.tasks': { rule: 'public', input: () => undefined },
  'evals.leaderboard': { rule: 'public', input: () => ({ taskId: 'x' }) },
  'evals.request': { rule: 'user:evaluate', input: () => ({ ...adapterRef, taskId: 'x' }) },
  'edge.get': { rule: 'public', input: () => adapterRef },
  'edge.downloadUrl': { rule: 'public', input: () => ({ ...adapterRef, path: 'model.onnx' }) },
  'edge.requestExport': { rule: 'role:member:write:adapter', input: () => adapterRef },
  'evals.suiteLeaderboard': { rule: 'public', input: () => ({ suiteId: 'x' }) },
  'evals.compare': { rule: 'public', input: () => ({ versions: [adapterRefVersion, adapterRefVersion] }) },
  'evals.run': { rule: 'public', input: () => ({ id: 1 }) },
  'evals.versionScore': { rule: 'public', input: () => ({ ...adapterRef, version: 'latest', suiteId: 'x' }) },
  'edge.requestBaseExport': { rule: 'admin', input: () => ({ baseModelId: 'tiny-llama' }) },
  'evals.suites': { rule: 'public', input: () => undefined },
  'evals.suite': { rule: 'public', input: () => ({ id: 'x' }) },
  'evals.requestSuite': { rule: 'user:evaluate', input: () => ({ ...adapterRef, suiteId: 'x' }) },
  'evals.registerSuite': { rule: 'admin', input: () => ({}) },
  'evals.beginTaskUpload': { rule: 'admin', input: () => ({}) },
  'evals.registerTask': { rule: 'admin', input: () => ({}) },
  'runner.createToken': { rule: 'admin', input: () => ({ name: 'x' }) },
  'runner.register': { rule: 'runner', input: () => ({}) },
  'runner.claim': { rule: 'runner', input: () => ({ runnerId: uuid }) },
  'runner.heartbeat': { rule: 'runner', input: () => lease },
  'runner.report': { rule: 'runner', input: () => ({ ...lease, events: [] }) },
  'runner.uploadUrls': { rule: 'runner', input: () => ({ ...lease, files: [] }) },
  'runner.checkpoint': { rule: 'runner', input: () => lease },
  'runner.release': { rule: 'runner', input: () => ({ ...lease, reason: 'x' }) },
  'runner.complete': { rule: 'runner', input: () => lease },
  'uploads.resume': { rule: 'user:read', input: () => ({ uploadId: uuid }) },
  'teams.create': { rule: 'user:write', input: () => ({ name: 'x' }) },
  'teams.mine': { rule: 'user:read', input: () => undefined },
  'teams.get': { rule: 'role:viewer:read:namespace', input: () => ({ team: TEAM }) },
  'teams.invite': { rule: 'role:admin:write:namespace', input: () => ({ team: TEAM }) },
  'teams.revokeInvitation': { rule: 'role:admin:write:namespace', input: () => ({ team: TEAM, id: uuid }) },
  'teams.accept': { rule: 'user:write', input: () => ({ token: 'x' }) },
  'teams.leave': { rule: 'role:viewer:write:namespace', input: () => ({ team: TEAM }) },
  'teams.removeMember': { rule: 'role:admin:write:namespace', input: () => ({ team: TEAM, email: 'x@example.com' }) },
  'teams.setRole': { rule: 'role:admin:write:namespace', input: () => ({ team: TEAM, email: 'x@example.com', role: 'member' }) },
  'teams.transferOwnership': { rule: 'role:owner:write:namespace', input: () => ({ team: TEAM, email: 'x@example.com' }) },
  'teams.tokens': { rule: 'role:admin:read:namespace', input: () => ({ team: TEAM }) },
  'teams.revokeToken': { rule: 'role:admin:write:namespace', input: () => ({ team: TEAM, id: uuid }) },
  'teams.auditLog': { rule: 'role:admin:read:namespace', input: () => ({ namespace: TEAM }) },
};

type Outcome = 'allowed' | 'UNAUTHORIZED' | 'FORBIDDEN' | 'NOT_FOUND';

/** A kind of caller: how to build its context and what the matrix expects of it. */
interface CallerKind {
  name: string;
  context(rule: Rule): Promise<Context>;
  expect(rule: Rule): Outcome;
}

const SCOPES: Scope[] = ['read', 'write', 'fine-tune', 'evaluate', 'admin'];

// Team members act with a browser session, which has every scope.
function expectedForRole(role: TeamRole | null, rule: Rule, isSiteAdmin = false): Outcome {
  switch (rule.kind) {
    case 'public': return 'allowed';
    case 'runner': return 'UNAUTHORIZED';
    case 'admin': return isSiteAdmin ? 'allowed' : 'FORBIDDEN';
    case 'user': return 'allowed';
    case 'namespace': {
      if (!role) {
        const hidden = rule.target.from === 'job' || rule.target.from === 'datasetVersion' || (rule.target.from === 'namespace' && rule.target.private);
        return hidden ? 'NOT_FOUND' : 'FORBIDDEN';
      }
      return roleAtLeast(role, rule.role) ? 'allowed' : 'FORBIDDEN';
    }
  }
}

function neededScope(rule: Rule): Scope | null {
  if (rule.kind === 'user' || rule.kind === 'namespace') return rule.scope;
  return rule.kind === 'admin' ? 'admin' : null;
}

let db: Db;
let fixtures: Fixtures;
const sessions: Record<string, string> = {};
// The team owner's tokens: exactly one scope, or every scope but one.
const withScope: Partial<Record<Scope, string>> = {};
const withoutScope: Partial<Record<Scope, string>> = {};
let runnerToken = '';

async function newAccount(role: string): Promise<string> {
  const created = await signUp(db, { email: `${role}-${run}@example.com`, password: 'password-123', namespace: `${role}-${run}` });
  return created.userId;
}

beforeAll(async () => {
  db = await getDb();
  for (const role of ['owner', 'admin', 'member', 'viewer', 'outsider']) sessions[role] = await newAccount(`matrix-${role}`);
  await createTeam(db, { userId: sessions.owner!, name: TEAM });
  const [team] = await db.select({ namespaceId: teamMembers.namespaceId }).from(teamMembers).where(eq(teamMembers.userId, sessions.owner!));
  for (const role of ['admin', 'member', 'viewer'] as const) await db.insert(teamMembers).values({ namespaceId: team!.namespaceId, userId: sessions[role]!, role });

  // Rows that name private and public things of the team; their contents do not matter here.
  await db.insert(adapters).values({ namespaceId: team!.namespaceId, name: ADAPTER, baseModelId: TINY_BASE_ID });
  const sha256 = createHash('sha256').update(`matrix-${run}`).digest('hex');
  await db.insert(blobs).values({ sha256, size: 1, s3Key: `blobs/${sha256}` });
  const [dataset] = await db.insert(datasets).values({ namespaceId: team!.namespaceId, name: 'matrix-data' }).returning({ id: datasets.id });
  const [version] = await db.insert(datasetVersions).values({ datasetId: dataset!.id, version: 1, sha256, size: 1, filename: 'x.jsonl', valid: true, report: {} }).returning({ id: datasetVersions.id });
  const [job] = await db.insert(jobs).values({ kind: 'finetune', state: 'succeeded', namespaceId: team!.namespaceId, baseModelId: TINY_BASE_ID, params: {}, maxAttempts: 1 }).returning({ id: jobs.id });
  fixtures = { datasetVersionId: version!.id, jobId: job!.id };

  for (const scope of SCOPES) {
    withScope[scope] = (await createApiToken(db, { userId: sessions.owner!, name: `only ${scope}`, scopes: [scope], expiresInDays: 1 })).token;
    withoutScope[scope] = (await createApiToken(db, { userId: sessions.owner!, name: `all but ${scope}`, scopes: SCOPES.filter((s) => s !== scope), expiresInDays: 1 })).token;
  }
  const [siteAdmin] = await db.select({ id: users.id }).from(users).where(eq(users.isAdmin, true)).limit(1);
  sessions.siteAdmin = siteAdmin!.id;
  runnerToken = (await createRunnerToken(db, { userId: siteAdmin!.id, name: `matrix-${run}` })).token;
});

const session = (key: string) => () => createContext({ sessionUserId: sessions[key]! });

const CALLERS: CallerKind[] = [
  { name: 'anonymous', context: () => createContext({}), expect: (rule) => (rule.kind === 'public' ? 'allowed' : 'UNAUTHORIZED') },
  { name: 'signed-in non-member', context: session('outsider'), expect: (rule) => expectedForRole(null, rule) },
  { name: 'viewer', context: session('viewer'), expect: (rule) => expectedForRole('viewer', rule) },
  { name: 'member', context: session('member'), expect: (rule) => expectedForRole('member', rule) },
  { name: 'team admin', context: session('admin'), expect: (rule) => expectedForRole('admin', rule) },
  { name: 'owner', context: session('owner'), expect: (rule) => expectedForRole('owner', rule) },
  // The first account of the installation: a site administrator, and an admin of every namespace.
  { name: 'site administrator', context: session('siteAdmin'), expect: (rule) => expectedForRole('admin', rule, true) },
  {
    name: 'owner token with the scope',
    context: (rule) => createContext({ authorization: `Bearer ${withScope[neededScope(rule) ?? 'read']}` }),
    expect: (rule) => expectedForRole('owner', rule),
  },
  {
    name: 'owner token without the scope',
    context: (rule) => createContext({ authorization: `Bearer ${withoutScope[neededScope(rule) ?? 'read']}` }),
    expect: (rule) => (neededScope(rule) && rule.kind !== 'public' ? 'FORBIDDEN' : expectedForRole('owner', rule)),
  },
  {
    name: 'runner token',
    context: () => createContext({ authorization: `Bearer ${runnerToken}` }),
    expect: (rule) => (rule.kind === 'public' || rule.kind === 'runner' ? 'allowed' : 'UNAUTHORIZED'),
  },
];

const procedures = appRouter._def.procedures as unknown as Record<string, { _def: { meta?: { rule?: Rule }; middlewares: unknown[] } }>;

/** Calls a procedure through the router by its dotted path. */
async function callByPath(context: Context, path: string, input: unknown): Promise<unknown> {
  const caller = createCaller(context) as unknown as Record<string, unknown>;
  const fn = path.split('.').reduce<unknown>((node, key) => (node as Record<string, unknown>)[key], caller) as (input: unknown) => Promise<unknown>;
  return fn(input);
}

describe('authorization matrix', () => {
  it('every procedure has a row', () => {
    const paths = Object.keys(procedures).sort();
    expect(paths.filter((path) => !(path in MATRIX)), 'procedures without a row in MATRIX').toEqual([]);
    expect(Object.keys(MATRIX).filter((path) => !(path in procedures)), 'rows without a procedure').toEqual([]);
  });

  it('every procedure declares its rule', () => {
    const middleware = (authorizeMiddleware as unknown as { _middlewares: unknown[] })._middlewares[0];
    for (const [path, procedure] of Object.entries(procedures)) {
      const rule = procedure._def.meta?.rule;
      expect(rule, `${path} has no rule`).toBeDefined();
      expect(describeRule(rule!), path).toBe(MATRIX[path]?.rule);
      expect(procedure._def.middlewares[0], `${path} does not run the authorization middleware first`).toBe(middleware);
    }
  });

  for (const kind of CALLERS) {
    it(`rules hold for ${kind.name}`, async () => {
      const mismatches: string[] = [];
      for (const [path, procedure] of Object.entries(procedures)) {
        const rule = procedure._def.meta!.rule!;
        const input = MATRIX[path]!.input(fixtures);
        const expected = kind.expect(rule);
        const context = await kind.context(rule);
        let actual: string;
        if (expected === 'allowed') {
          // Allowed calls are not run, so they cannot change the fixtures for the next caller.
          actual = await authorize(context, rule, input).then(() => 'allowed', (error: unknown) => (error instanceof TRPCError ? error.code : String(error)));
        } else {
          actual = await callByPath(context, path, input).then(() => 'allowed', (error: unknown) => (error instanceof TRPCError ? error.code : String(error)));
        }
        if (actual !== expected) mismatches.push(`${path} (${describeRule(rule)}): expected ${expected}, got ${actual}`);
      }
      expect(mismatches).toEqual([]);
    });
  }
});
