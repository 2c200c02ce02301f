import { TRPCError } from '@trpc/server';
import { archiveFileName } from '@/lib/adapter-archive';
import type { Db } from '../db';
import { archiveSize, TarError, type TarSource } from '../formats/tar';
import { getObjectStream } from '../storage';
import { countDownload, getAdapterPage } from './adapters';
import { badRequest } from './errors';
import { blobObjectKey } from './uploads';
import type { Reader } from './visibility';

export interface VersionArchive {
  version: number;
  fileName: string;
  // Exact length of the archive in bytes, known before any byte is read from S3.
  size: number;
  // Yank warning for the client, or null for a version that is not yanked.
  warning: string | null;
  sources: TarSource[];
}

/** Parses the `{version}` route segment: a positive version number, or `latest`. */
export function parseArchiveVersion(segment: string): number | undefined {
  if (segment === 'latest') return undefined;
  if (/^[1-9]\d{0,8}$/.test(segment)) return Number(segment);
  throw badRequest(`version ${JSON.stringify(segment)} is invalid; use a version number such as 3, or latest`);
}

/**
 * Prepares the ustar archive of one version: every file of the version under its own path,
 * read from S3 only when the stream reaches it. `latest` skips yanked versions, but an
 * exact number still reaches a yanked one, with a warning. With `count`, the download is
 * counted as `downloadFile` counts it (once per client, version and UTC day).
 */
export async function prepareVersionArchive(db: Db, reader: Reader, input: { namespace: string; name: string; version: string; clientKey: string; count: boolean }): Promise<VersionArchive> {
  const page = await getAdapterPage(db, reader, input.namespace, input.name, parseArchiveVersion(input.version));
  const mtime = new Date(page.version.createdAt);
  const sources: TarSource[] = [];
  for (const file of page.files) {
    // The key is looked up, not computed, because a file uploaded in parts keeps its upload key.
    const key = await blobObjectKey(db, file.sha256);
    sources.push({ name: file.path, size: file.size, mtime, open: () => getObjectStream(key) });
  }

  let size: number;
  try {
    size = archiveSize(sources);
  } catch (error) {
    if (!(error instanceof TarError)) throw error;
    throw new TRPCError({
      code: 'UNPROCESSABLE_CONTENT',
      message: `version ${page.version.version} of ${input.namespace}/${input.name} cannot be archived: ${error.message}; download its files one by one with \`adapters pull\` instead`,
    });
  }

  if (input.count) await countDownload(db, { adapterId: page.adapterId, versionId: page.version.id, clientKey: input.clientKey });
  return {
    version: page.version.version,
    fileName: archiveFileName(input.namespace, page.name, page.version.version),
    size,
    warning: page.version.yanked ? `version ${page.version.version} of ${input.namespace}/${page.name} was yanked: ${page.version.yanked.reason}` : null,
    sources,
  };
}
