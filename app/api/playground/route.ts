import { TRPCError } from '@trpc/server';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import { getServerSession } from 'next-auth';
import { z } from 'zod';
import { authorize } from '@/server/api/authz';
import { createContext } from '@/server/api/trpc';
import { authOptions } from '@/server/auth';
import { getEnv } from '@/server/env';
import { logger } from '@/server/logger';
import { playgroundCounters } from '@/server/playground/metrics';
import { Generation, promptTokens } from '@/server/playground/generate';
import { PlaygroundUnavailable, preparePlayground } from '@/server/playground/service';
import { hit, retryAfterOf } from '@/server/rate-limit';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

const MAX_BODY_BYTES = 64 * 1024;

function requestSchema(maxTokens: number) {
  return z.object({
    namespace: z.string().min(1).max(100),
    name: z.string().min(1).max(100),
    version: z.number().int().positive().optional(),
    prompt: z.string().trim().min(1, { message: 'prompt is empty; type a prompt' }).max(8000),
    temperature: z.number().min(0).max(2).default(0),
    maxTokens: z.number().int().min(1).max(maxTokens, { message: `maxTokens must be at most ${maxTokens} (PLAYGROUND_MAX_TOKENS)` }).default(Math.min(64, maxTokens)),
    seed: z.number().int().min(0).max(2 ** 32 - 1).optional(),
  });
}

function errorResponse(status: number, message: string, headers: Record<string, string> = {}): Response {
  return Response.json({ error: { message } }, { status, headers });
}

function fromError(error: unknown): Response {
  if (error instanceof TRPCError) {
    const retryAfter = retryAfterOf(error);
    return errorResponse(getHTTPStatusCodeFromError(error), error.message, retryAfter === null ? {} : { 'Retry-After': String(retryAfter) });
  }
  if (error instanceof PlaygroundUnavailable) {
    logger.warn({ err: error }, 'playground: graph unavailable');
    return errorResponse(503, `the playground is not available for this base model: ${error.message}`);
  }
  logger.error({ err: error }, 'playground: request failed');
  return errorResponse(500, 'internal error; the server log has the details');
}

/**
 * Streams a generation with the base model and with the adapter, side by side, as NDJSON:
 * `{"type":"start",…}`, then `{"type":"token","column":"base"|"adapter","text":…}` lines as
 * each token arrives, `{"type":"done","column",…,"tokens"}` per column and `{"type":"end"}`.
 * Signed-in users only (a session, or an API token with the read scope), rate limited per
 * user. Prompts and outputs are neither stored nor logged; the page's "Save" stores them
 * through the playground.save procedure.
 */
export async function POST(request: Request) {
  const length = Number(request.headers.get('content-length') ?? 0);
  if (length > MAX_BODY_BYTES) return errorResponse(413, `request body of ${length} bytes exceeds the ${MAX_BODY_BYTES}-byte limit`);

  const env = getEnv();
  let prepared;
  let input;
  let prompt: number[];
  try {
    const authorization = request.headers.get('authorization');
    const session = authorization ? null : await getServerSession(authOptions());
    const context = await createContext({
      authorization,
      sessionUserId: (session as { userId?: string } | null)?.userId ?? null,
      clientAddress: request.headers.get('x-forwarded-for')?.split(',')[0]?.trim() ?? request.headers.get('x-real-ip'),
    });
    // Adapters are public, so any signed-in caller who may read may try one.
    await authorize(context, { kind: 'user', scope: 'read' }, null);
    await hit(context.db, `playground:user:${context.user!.id}`, env.RATE_LIMIT_PLAYGROUND, env.RATE_LIMIT_WINDOW_SECONDS);

    const body = await request.json().catch(() => undefined);
    const parsed = requestSchema(env.PLAYGROUND_MAX_TOKENS).safeParse(body);
    if (!parsed.success) {
      return errorResponse(400, `invalid input: ${parsed.error.issues.map((issue) => `${issue.path.join('.') || 'body'}: ${issue.message}`).join('; ')}`);
    }
    input = parsed.data;
    prepared = await preparePlayground(context.db, context, env, input);
    prompt = promptTokens(prepared.graph, input.prompt);
  } catch (error) {
    return fromError(error);
  }

  const { graph, feeds, page } = prepared;
  if (prompt.length > env.PLAYGROUND_MAX_PROMPT_TOKENS) {
    return errorResponse(400, `prompt is ${prompt.length} tokens after the chat template, above the limit of ${env.PLAYGROUND_MAX_PROMPT_TOKENS} (PLAYGROUND_MAX_PROMPT_TOKENS); shorten it`);
  }
  const seed = input.seed ?? Math.floor(Math.random() * 2 ** 32);
  const options = { temperature: input.temperature, maxTokens: input.maxTokens, seed };
  const columns = { base: new Generation(graph, graph.zeroLora, prompt, options), adapter: new Generation(graph, feeds, prompt, options) };
  playgroundCounters.generations += 1;

  const encoder = new TextEncoder();
  const stream = new ReadableStream<Uint8Array>({
    async start(controller) {
      const send = (line: Record<string, unknown>) => controller.enqueue(encoder.encode(`${JSON.stringify(line)}\n`));
      send({ type: 'start', namespace: page.namespace, name: page.name, version: page.version.version, baseModelId: graph.baseModelId, seed, promptTokens: prompt.length });
      try {
        // The columns take turns, one token each, so both fill at the same pace on one session.
        while (!request.signal.aborted && (!columns.base.done || !columns.adapter.done)) {
          for (const column of ['base', 'adapter'] as const) {
            const generation = columns[column];
            if (generation.done) continue;
            const text = await generation.step();
            if (text === null) send({ type: 'done', column, tokens: generation.tokenCount });
            else if (text !== '') send({ type: 'token', column, text });
          }
        }
        send({ type: 'end' });
      } catch (error) {
        logger.error({ err: error, adapterVersionId: page.version.id }, 'playground: generation failed');
        send({ type: 'error', message: 'generation failed; the server log has the details' });
      }
      controller.close();
    },
  });
  return new Response(stream, { headers: { 'Content-Type': 'application/x-ndjson; charset=utf-8', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' } });
}
