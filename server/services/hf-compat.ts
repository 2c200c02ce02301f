import { createHash } from 'node:crypto';
import type { Db } from '../db';
import { getAdapterPage } from './adapters';
import { notFound } from './errors';
import type { Reader } from './visibility';

/**
 * Read-only views of adapter versions in the shapes of the Hugging Face Hub API, so that
 * `huggingface_hub` and PEFT work against this app with `endpoint=` or `HF_ENDPOINT`.
 * A version plays the part of a commit: its "sha" is a stable 40-hex id derived from the
 * adapter id and version number, and the revision `main` is the latest version.
 */

export function commitSha(adapterId: string, version: number): string {
  return createHash('sha1').update(`${adapterId}:${version}`).digest('hex');
}

/** Finds the version a revision names: `main`, a version number (`3` or `v3`), or a commit sha. */
export async function resolveRevision(db: Db, reader: Reader, namespace: string, name: string, revision: string) {
  const latest = await getAdapterPage(db, reader, namespace, name);
  const { adapterId } = latest;
  if (revision === 'main') return { page: latest, sha: commitSha(adapterId, latest.version.version) };

  const number = /^v?(\d+)$/.exec(revision)?.[1];
  const match = number
    ? latest.versions.find((v) => v.version === Number(number))
    : latest.versions.find((v) => commitSha(adapterId, v.version) === revision);
  if (!match) throw notFound(`revision ${JSON.stringify(revision)} of ${namespace}/${name}`);
  const page = match.version === latest.version.version ? latest : await getAdapterPage(db, reader, namespace, name, match.version);
  return { page, sha: commitSha(adapterId, match.version) };
}

export async function modelInfo(db: Db, reader: Reader, namespace: string, name: string, revision: string) {
  const { page, sha } = await resolveRevision(db, reader, namespace, name, revision);
  const card = page.version.cardMetadata as { tags?: string[]; license?: string | null; extra?: Record<string, unknown> };
  return {
    id: `${namespace}/${name}`,
    modelId: `${namespace}/${name}`,
    author: namespace,
    sha,
    private: page.visibility === 'private',
    disabled: false,
    gated: false,
    downloads: page.downloads,
    library_name: 'peft',
    tags: ['peft', 'lora', ...(page.domain ? [page.domain] : []), ...(card.tags ?? []), `base_model:${page.baseModelId}`, ...(card.license ? [`license:${card.license}`] : [])],
    lastModified: new Date(page.version.createdAt).toISOString(),
    createdAt: new Date(page.version.createdAt).toISOString(),
    cardData: { ...card.extra, base_model: page.baseModelId, library_name: 'peft' },
    siblings: page.files.map((file) => ({ rfilename: file.path, size: file.size, blobId: file.sha256, lfs: { size: file.size, sha256: file.sha256, pointerSize: 134 } })),
  };
}

export async function modelTree(db: Db, reader: Reader, namespace: string, name: string, revision: string) {
  const { page } = await resolveRevision(db, reader, namespace, name, revision);
  return page.files.map((file) => ({ type: 'file', path: file.path, size: file.size, oid: file.sha256, lfs: { oid: file.sha256, size: file.size, pointerSize: 134 } }));
}
