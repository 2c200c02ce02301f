import { TRPCError } from '@trpc/server';
import { errorResponse, requestCaller } from '@/lib/api-caller';
import { badgeColor, badgeSvg } from '@/server/formats/badge-svg';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

const SVG_HEADERS = {
  'Content-Type': 'image/svg+xml; charset=utf-8',
  // README renderers fetch through caching proxies; five minutes keeps badges fresh enough
  // after a new result without one fetch per page view.
  'Cache-Control': 'public, max-age=300, stale-while-revalidate=600',
  // The SVG has no script, and this keeps it inert if opened directly.
  'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'",
};

/**
 * A README badge with a version's score on the latest version of a suite:
 * GET /api/badge/{namespace}/{name}/{version}/{suite}.svg, where version is a number or
 * `latest`. A version without a comparable run gets a grey "not evaluated" badge; an unknown
 * adapter or suite returns 404 with a grey "not found" badge.
 */
export async function GET(request: Request, { params }: { params: Promise<{ namespace: string; name: string; version: string; suite: string }> }) {
  const { namespace, name, version: versionText, suite: suiteFile } = await params;
  const suiteId = suiteFile.endsWith('.svg') ? suiteFile.slice(0, -4) : suiteFile;
  const version = versionText === 'latest' ? 'latest' as const : /^[1-9]\d{0,8}$/.test(versionText) ? Number(versionText) : null;
  if (version === null) {
    return new Response(badgeSvg(suiteId, `invalid version ${versionText.slice(0, 20)}`, badgeColor(null)), { status: 400, headers: SVG_HEADERS });
  }

  try {
    const score = await (await requestCaller(request)).evals.versionScore({ namespace, name, version, suiteId });
    const label = `${score.suite.displayName} v${score.suite.version}`;
    if (score.score === null) return new Response(badgeSvg(label, 'not evaluated', badgeColor(null)), { headers: SVG_HEADERS });
    const gain = score.gain === null ? '' : ` (${score.gain >= 0 ? '+' : ''}${(score.gain * 100).toFixed(1)})`;
    return new Response(badgeSvg(label, `${(score.score * 100).toFixed(1)}%${gain}`, badgeColor(score.gain)), { headers: SVG_HEADERS });
  } catch (error) {
    if (error instanceof TRPCError && error.code === 'NOT_FOUND') {
      return new Response(badgeSvg(suiteId, 'not found', badgeColor(null)), { status: 404, headers: SVG_HEADERS });
    }
    return errorResponse(error, 'badge');
  }
}
