/**
 * The contract of the version archive route, shared by the API route, the adapter page
 * and the CLI: its URL path, the archive's file name and the encoding of the
 * `X-Adapter-Warning` header.
 */

export const ARCHIVE_WARNING_HEADER = 'X-Adapter-Warning';

/** Returns the path of a version's archive. `latest` names the newest version that is not yanked. */
export function archivePath(namespace: string, name: string, version: number | 'latest'): string {
  return `/api/adapters/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}/versions/${version}/archive`;
}

/** Returns the file name an archive is saved under, e.g. `demo--pubmedqa-demo-v3.tar`. */
export function archiveFileName(namespace: string, name: string, version: number): string {
  return `${namespace}--${name}-v${version}.tar`;
}

/**
 * Encodes free text (such as a yank reason) as an HTTP header value. Node.js rejects
 * control characters other than tab and characters above U+00FF in headers, and clients
 * decode bytes above 0x7F inconsistently. So "%", control characters and every non-ASCII
 * character are percent-encoded as UTF-8, and `decodeURIComponent` restores the text.
 */
export function encodeHeaderText(text: string): string {
  return text.replace(/[^\x20-\x24\x26-\x7e]+/gu, (run) => encodeURIComponent(run));
}

/** Restores text written by `encodeHeaderText`. */
export function decodeHeaderText(value: string): string {
  return decodeURIComponent(value);
}
