import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { TRPCError } from '@trpc/server';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import type { NextApiRequest, NextApiResponse } from 'next';
import { getServerSession } from 'next-auth';
import { ARCHIVE_WARNING_HEADER, encodeHeaderText } from '@/lib/adapter-archive';
import { createContext } from '@/server/api/trpc';
import { authOptions } from '@/server/auth';
import { tarStream } from '@/server/formats/tar';
import { logger } from '@/server/logger';
import { prepareVersionArchive } from '@/server/services/archives';

// This is a Pages Router API route, not an App Router route handler, because Next.js 16.5
// drops Content-Length from every route handler response (FORBIDDEN_HEADERS in
// next/dist/server/send-response.js). Here the handler writes to the Node response itself.
export const config = { api: { bodyParser: false, responseLimit: false } };

function firstHeader(request: NextApiRequest, name: string): string | null {
  const value = request.headers[name];
  return (Array.isArray(value) ? value[0] : value) ?? null;
}

/**
 * Builds the caller as the tRPC API does (a bearer token, else the cookie session). Its client
 * key (the user or token owner, else the address) makes an archive and single-file downloads
 * of one version count once together, and private adapters are NOT_FOUND to outsiders.
 */
async function callerOf(request: NextApiRequest, response: NextApiResponse) {
  const authorization = firstHeader(request, 'authorization');
  // A bearer token wins over the cookie session, as in the tRPC route.
  const session = authorization ? null : await getServerSession(request, response, authOptions());
  const context = await createContext({
    authorization,
    sessionUserId: (session as { userId?: string } | null)?.userId ?? null,
    clientAddress: firstHeader(request, 'x-forwarded-for')?.split(',')[0]?.trim() ?? firstHeader(request, 'x-real-ip'),
  });
  return context;
}

/**
 * Streams every file of an adapter version as one ustar archive (`GET`), or sends only its
 * headers (`HEAD`, which is not counted as a download). `{version}` is a number or
 * `latest`. Each file is piped from S3 in turn, so the app keeps a few chunks in memory,
 * never a whole file.
 */
export default async function archive(request: NextApiRequest, response: NextApiResponse): Promise<void> {
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.setHeader('Allow', 'GET, HEAD');
    response.status(405).json({ error: `method ${request.method} is not allowed on an archive; use GET or HEAD` });
    return;
  }
  const { namespace, name, version } = request.query as { namespace: string; name: string; version: string };
  const isHead = request.method === 'HEAD';

  let prepared;
  try {
    const caller = await callerOf(request, response);
    prepared = await prepareVersionArchive(caller.db, caller, {
      namespace, name, version, clientKey: caller.clientKey, count: !isHead,
    });
  } catch (error) {
    if (error instanceof TRPCError && error.code !== 'INTERNAL_SERVER_ERROR') {
      response.status(getHTTPStatusCodeFromError(error)).json({ error: error.message });
      return;
    }
    logger.error({ err: error, namespace, name, version }, 'archive request failed');
    response.status(500).json({ error: 'internal error; the server log has the details' });
    return;
  }

  response.setHeader('Content-Type', 'application/x-tar');
  response.setHeader('Content-Disposition', `attachment; filename="${prepared.fileName.replace(/["\\\r\n]/g, '_')}"`);
  response.setHeader('Content-Length', String(prepared.size));
  response.setHeader('X-Adapter-Version', String(prepared.version));
  // no-transform keeps Next.js from compressing the body, so Content-Length stays exact.
  response.setHeader('Cache-Control', 'no-store, no-transform');
  if (prepared.warning) response.setHeader(ARCHIVE_WARNING_HEADER, encodeHeaderText(prepared.warning));
  if (isHead) {
    response.status(200).end();
    return;
  }

  const ids = { namespace, name, version: prepared.version };
  const body = tarStream(prepared.sources, {
    // The status line is already sent, so the client sees a body shorter than Content-Length.
    onError: (error) => logger.error({ err: error, ...ids }, 'archive stream failed'),
    onCancel: (sentBytes) => logger.info({ ...ids, sentBytes, size: prepared.size }, 'archive download stopped by the client'),
  });
  response.status(200);
  try {
    // A client that disconnects closes the response, so pipeline destroys the Node stream,
    // which cancels the tar stream, which destroys the S3 stream being read.
    await pipeline(Readable.fromWeb(body as NodeReadableStream<Uint8Array>), response);
  } catch {
    // The hooks above have logged the cause (a failed source or a disconnect), and pipeline
    // has destroyed the response, so there is nothing left to send.
  }
}
