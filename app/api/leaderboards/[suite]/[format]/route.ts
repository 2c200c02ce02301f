import { errorResponse, requestCaller } from '@/lib/api-caller';
import { parseLeaderboardParams } from '@/lib/leaderboard-params';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

const CSV_COLUMNS = [
  'rank', 'adapter', 'version', 'suite_score', 'stderr', 'gain', 'general_change', 'trainable_parameters', 'share_of_base', 'lora_rank', 'downloads', 'contamination_flagged', 'max_overlap',
] as const;

/** Quotes a CSV field when it contains a separator, quote or line break (RFC 4180). */
function csvField(value: string | number | boolean | null): string {
  if (value === null) return '';
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/**
 * A suite leaderboard as CSV or JSON: GET /api/leaderboards/{suite}/csv or /json, with the
 * page's URL parameters (base, version, sort, order, q, rank, clean). Runs through the
 * public `evals.suiteLeaderboard` procedure, so its rate limit applies.
 */
export async function GET(request: Request, { params }: { params: Promise<{ suite: string; format: string }> }) {
  const { suite, format } = await params;
  if (format !== 'csv' && format !== 'json') return Response.json({ error: `format ${JSON.stringify(format)} is not supported; use csv or json` }, { status: 404 });
  const parsed = parseLeaderboardParams(suite, new URL(request.url).searchParams);
  if (parsed.error !== null) return Response.json({ error: parsed.error }, { status: 400 });

  try {
    const board = await (await requestCaller(request)).evals.suiteLeaderboard(parsed.input);
    const filename = `${board.suite.id}-v${board.suite.version}-${board.baseModelId ?? 'none'}`.replace(/[^A-Za-z0-9._-]/g, '_');
    const headers = { 'Cache-Control': 'public, max-age=60', 'Content-Disposition': `attachment; filename="${filename}.${format}"` };
    if (format === 'json') return Response.json(board, { headers });

    const lines = [CSV_COLUMNS.join(',')];
    for (const e of board.entries) {
      lines.push([
        e.rank, e.adapter, e.version, e.score, e.stderr, e.gain, e.forgetting, e.trainableParameters, e.shareOfBase, e.loraRank, e.downloads,
        e.contamination?.flagged ?? null, e.contamination?.maxOverlap ?? null,
      ].map(csvField).join(','));
    }
    return new Response(`${lines.join('\r\n')}\r\n`, { headers: { ...headers, 'Content-Type': 'text/csv; charset=utf-8' } });
  } catch (error) {
    return errorResponse(error, 'leaderboard export');
  }
}
