import { hubResponse } from '@/lib/hf-route';
import { requestCaller } from '@/lib/request-reader';
import { resolveRevision } from '@/server/services/hf-compat';
import { downloadFile } from '@/server/services/adapters';
import { notFound } from '@/server/services/errors';
import { presignGet } from '@/server/storage';
import { blobObjectKey } from '@/server/services/uploads';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

type Params = { params: Promise<{ namespace: string; name: string; revision: string; path: string[] }> };

/**
 * Hub-compatible file download: a redirect to a presigned S3 URL, with the headers
 * huggingface_hub reads on the redirect (X-Repo-Commit, X-Linked-Etag with the sha256,
 * X-Linked-Size). S3 serves Range requests on the target itself.
 */
async function resolve(request: Request, context: Params): Promise<Response> {
  const { namespace, name, revision, path } = await context.params;
  const file = path.map(decodeURIComponent).join('/');
  return hubResponse(async () => {
    const caller = await requestCaller(request);
    const db = caller.db;
    const { page, sha } = await resolveRevision(db, caller, namespace, name, decodeURIComponent(revision));
    const entry = page.files.find((f) => f.path === file);
    if (!entry) throw notFound(`file ${file} in ${namespace}/${name} at ${revision}`);

    // HEAD is metadata only; a GET counts as a download.
    const location = request.method === 'HEAD'
      ? await presignGet(await blobObjectKey(db, entry.sha256))
      : (await downloadFile(db, caller, { namespace, name, version: page.version.version, path: file, clientKey: caller.clientKey })).url;
    return new Response(null, {
      status: 302,
      headers: {
        Location: location,
        ETag: `"${entry.sha256}"`,
        'X-Repo-Commit': sha,
        'X-Linked-Etag': `"${entry.sha256}"`,
        'X-Linked-Size': String(entry.size),
        'Cache-Control': 'no-store',
        // Without an explicit length some HTTP clients wait for a body after a HEAD.
        'Content-Length': '0',
      },
    });
  });
}

export { resolve as GET, resolve as HEAD };
