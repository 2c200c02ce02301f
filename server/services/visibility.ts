import { and, eq, inArray, or, type SQL } from 'drizzle-orm';
import { adapters, teamMembers, type AdapterVisibility } from '@/drizzle/schema';
import { roleIn, type Caller } from '../api/authz';

/**
 * The caller of a read: the tRPC context, or one built for a route handler from the same credentials.
 * `'internal'` skips the visibility check, for code that acts on the system's behalf (the job
 * queue, authorization itself) and never returns what it reads to a caller.
 */
export type Reader = Pick<Caller, 'db' | 'user' | 'scopes' | 'tokenNamespaceId' | 'tokenAdapterIds'> | 'internal';

/** Returns a reader without credentials, for anonymous route handlers and scripts. */
export function anonymousReader(db: Caller['db']): Reader {
  return { db, user: null, scopes: null, tokenNamespaceId: null, tokenAdapterIds: null };
}

/**
 * Tells whether `reader` may read an adapter. A public one is readable by everyone. A private one needs
 * a role of any kind in its namespace (site administrators count as admins everywhere), the
 * `read` scope on an API token, and a token allowed for that namespace and adapter.
 */
export async function canReadAdapter(reader: Reader, adapter: { id: string; namespaceId: string; visibility: AdapterVisibility }): Promise<boolean> {
  if (reader === 'internal' || adapter.visibility === 'public') return true;
  if (!reader.user) return false;
  if (reader.scopes && !reader.scopes.includes('read')) return false;
  if (reader.tokenAdapterIds && !reader.tokenAdapterIds.includes(adapter.id)) return false;
  return (await roleIn({ ...reader, runnerTokenId: null }, adapter.namespaceId)) !== null;
}

/**
 * Tells whether `reader` may read a namespace's private things (data sets, jobs): any role
 * there, and the `read` scope on an API token.
 */
export async function readsNamespace(reader: Reader, namespaceId: string): Promise<boolean> {
  if (reader === 'internal') return true;
  if (!reader.user || (reader.scopes && !reader.scopes.includes('read'))) return false;
  return (await roleIn({ ...reader, runnerTokenId: null }, namespaceId)) !== null;
}

/**
 * Returns an SQL condition on `adapters` that keeps the rows `reader` may see, for listings
 * (search, facets, leaderboards), so that counts never include private adapters of others.
 */
export async function readableAdapters(reader: Reader): Promise<SQL | undefined> {
  if (reader === 'internal') return undefined;
  const isPublic = eq(adapters.visibility, 'public');
  const user = reader.user;
  if (!user || (reader.scopes && !reader.scopes.includes('read'))) return isPublic;

  const limits: SQL[] = [];
  if (reader.tokenAdapterIds) limits.push(inArray(adapters.id, reader.tokenAdapterIds));
  if (reader.tokenNamespaceId) limits.push(eq(adapters.namespaceId, reader.tokenNamespaceId));
  // Site administrators have a role in every namespace.
  if (!user.isAdmin) {
    const teams = reader.db.select({ id: teamMembers.namespaceId }).from(teamMembers).where(eq(teamMembers.userId, user.id));
    limits.push(or(eq(adapters.namespaceId, user.namespaceId), inArray(adapters.namespaceId, teams))!);
  }
  if (limits.length === 0) return undefined;
  return or(isPublic, and(...limits))!;
}
