import fs from 'node:fs/promises';
import path from 'node:path';
import type { RemoteFile } from '../../server/contracts/runner';
import { download, sha256File } from './files';

/**
 * Base model files cached on local disk by model id. A file is reused only when its
 * recorded sha256 matches the one the app sends, so a re-registered model is fetched again.
 * NOTE: there is no size cap or eviction yet; the cache grows with every base model used.
 */
export async function ensureBaseModel(cacheDir: string, modelId: string, files: RemoteFile[]): Promise<string> {
  const dir = path.join(cacheDir, 'models', modelId.replace(/[^A-Za-z0-9._-]/g, '_'));
  await fs.mkdir(dir, { recursive: true });
  for (const file of files) {
    const target = path.join(dir, file.path);
    const marker = `${target}.sha256`;
    const recorded = await fs.readFile(marker, 'utf8').catch(() => null);
    if (recorded === file.sha256 && (await fs.stat(target).catch(() => null))?.size === file.size) continue;
    await download(file, target);
    await fs.writeFile(marker, file.sha256);
  }
  return dir;
}

export { sha256File };
