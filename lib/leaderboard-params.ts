import { leaderboardSorts, type SuiteLeaderboardInput } from '@/server/services/leaderboards';

/**
 * Reads a suite leaderboard's URL parameters for the page and the CSV and JSON export.
 * They are `base` (base model id), `version` (suite version), `sort` (one of
 * `leaderboardSorts`), `order` (`asc` or `desc`), `q` (substring of namespace/name@version),
 * `rank` (LoRA rank) and `clean=1` (hide results flagged for contamination). The first invalid
 * value is returned as an error message that names it and the accepted values.
 */
export function parseLeaderboardParams(suiteId: string, params: URLSearchParams): { input: SuiteLeaderboardInput; error: null } | { input: null; error: string } {
  const input: SuiteLeaderboardInput = { suiteId };
  const positive = (key: string): number | undefined | string => {
    const value = params.get(key);
    if (value === null || value === '') return undefined;
    return /^[1-9]\d{0,8}$/.test(value) ? Number(value) : `${key}=${JSON.stringify(value)} must be a positive whole number`;
  };

  const base = params.get('base');
  if (base) input.baseModelId = base.slice(0, 200);
  const version = positive('version');
  if (typeof version === 'string') return { input: null, error: version };
  input.suiteVersion = version;
  const rank = positive('rank');
  if (typeof rank === 'string') return { input: null, error: rank };
  input.loraRank = rank;

  const sort = params.get('sort');
  if (sort) {
    if (!(leaderboardSorts as readonly string[]).includes(sort)) return { input: null, error: `sort=${JSON.stringify(sort)} is not a column; use one of ${leaderboardSorts.join(', ')}` };
    input.sort = sort as SuiteLeaderboardInput['sort'];
  }
  const order = params.get('order');
  if (order) {
    if (order !== 'asc' && order !== 'desc') return { input: null, error: `order=${JSON.stringify(order)} must be asc or desc` };
    input.order = order;
  }
  const query = params.get('q');
  if (query) input.query = query.slice(0, 200);
  if (params.get('clean') === '1') input.hideContaminated = true;
  return { input, error: null };
}

/** Turns a page's searchParams object into URLSearchParams, keeping the first of repeated keys. */
export function toSearchParams(raw: Record<string, string | string[] | undefined>): URLSearchParams {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(raw)) {
    const first = Array.isArray(value) ? value[0] : value;
    if (first !== undefined) params.set(key, first);
  }
  return params;
}
