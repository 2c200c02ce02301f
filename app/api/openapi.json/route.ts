import { appRouter } from '@/server/api/root';
import { getEnv } from '@/server/env';
import { openApiDocument } from '@/server/openapi';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

/** Serves the OpenAPI document of the tRPC endpoint, generated from the router on each request. */
export function GET(request: Request) {
  const origin = getEnv().NEXTAUTH_URL ?? new URL(request.url).origin;
  return Response.json(openApiDocument(appRouter._def.procedures as unknown as Record<string, { _def: unknown }>, origin));
}
