import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { RemoteFile } from '../../server/contracts/runner';
import { download, sha256File } from './files';

const LAST_USED = '.last-used';

async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])) {
    if (entry.isFile()) total += (await fs.stat(path.join(entry.parentPath, entry.name)).catch(() => null))?.size ?? 0;
  }
  return total;
}

/**
 * Base model files cached on local disk by model id. A file is reused only when its recorded
 * sha256 matches the one the app sends, so a re-registered model is fetched again. After each
 * use, the least recently used models are deleted until the cache fits `maxBytes`. The model
 * in use is never deleted, even when it alone is larger.
 * NOTE: runners that share one cache folder do not lock it; give each runner its own.
 */
export async function ensureBaseModel(cacheDir: string, modelId: string, files: RemoteFile[], maxBytes = Infinity, log?: Logger): Promise<string> {
  const modelsDir = path.join(cacheDir, 'models');
  const dir = path.join(modelsDir, modelId.replace(/[^A-Za-z0-9._-]/g, '_'));
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, LAST_USED), new Date().toISOString());
  for (const file of files) {
    const target = path.join(dir, file.path);
    const marker = `${target}.sha256`;
    const recorded = await fs.readFile(marker, 'utf8').catch(() => null);
    if (recorded === file.sha256 && (await fs.stat(target).catch(() => null))?.size === file.size) continue;
    await download(file, target);
    await fs.writeFile(marker, file.sha256);
  }
  await evict(modelsDir, dir, maxBytes, log);
  return dir;
}

/** Deletes the least recently used model folders, other than `keep`, until the cache fits. */
export async function evict(modelsDir: string, keep: string, maxBytes: number, log?: Logger): Promise<string[]> {
  const entries = await fs.readdir(modelsDir, { withFileTypes: true });
  const models = [];
  for (const entry of entries) {
    if (!entry.isDirectory()) continue;
    const dir = path.join(modelsDir, entry.name);
    const lastUsed = Date.parse(await fs.readFile(path.join(dir, LAST_USED), 'utf8').catch(() => '1970-01-01T00:00:00Z'));
    models.push({ dir, lastUsed, bytes: await folderBytes(dir) });
  }
  let total = models.reduce((sum, model) => sum + model.bytes, 0);
  const evicted = [];
  for (const model of models.sort((a, b) => a.lastUsed - b.lastUsed)) {
    if (total <= maxBytes) break;
    if (model.dir === keep) continue;
    await fs.rm(model.dir, { recursive: true, force: true });
    total -= model.bytes;
    evicted.push(path.basename(model.dir));
    log?.info({ model: path.basename(model.dir), freedBytes: model.bytes }, 'evicted a base model from the cache');
  }
  return evicted;
}

/** Lists the ids (folder names) of the cached base models, for the runner's capabilities. */
export async function cachedModels(cacheDir: string): Promise<string[]> {
  const entries = await fs.readdir(path.join(cacheDir, 'models'), { withFileTypes: true }).catch(() => []);
  return entries.filter((entry) => entry.isDirectory()).map((entry) => entry.name);
}

export { sha256File };
