/**
 * Finds the folder a base model's shared-base graph loads from: a folder under
 * PLAYGROUND_GRAPH_DIR when an operator put one there, else the graph stored with the base
 * model in S3 (its files under `onnx/`), downloaded once into PLAYGROUND_CACHE_DIR.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { baseModels } from '@/drizzle/schema';
import type { Db } from '../db';
import { logger } from '../logger';
import { GRAPH_PREFIX } from '../services/base-models';
import { blobObjectKey } from '../services/uploads';
import { getObjectStream } from '../storage';
import { PlaygroundUnavailable } from './graph';


type BaseModel = typeof baseModels.$inferSelect;

async function exists(file: string): Promise<boolean> {
  return fs.stat(file).then(() => true, () => false);
}

async function download(db: Db, file: { path: string; size: number; sha256: string }, target: string): Promise<void> {
  const hash = createHash('sha256');
  let bytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      bytes += chunk.length;
      callback(null, chunk);
    },
  });
  await pipeline(await getObjectStream(await blobObjectKey(db, file.sha256)), counter, createWriteStream(target));
  const digest = hash.digest('hex');
  if (bytes !== file.size || digest !== file.sha256) {
    throw new PlaygroundUnavailable(`stored file ${file.path} came back with ${bytes} bytes and sha256 ${digest}, but the base model lists ${file.size} bytes and ${file.sha256}; register the base model again`);
  }
}

/**
 * Returns the folder to load the graph from, downloading the stored bundle on first use. The
 * cache folder is named by the manifest's sha256 and renamed into place only when complete, so
 * a crash mid-download leaves no half folder that looks finished.
 */
export async function graphFolder(db: Db, base: BaseModel, settings: { PLAYGROUND_GRAPH_DIR: string; PLAYGROUND_CACHE_DIR: string }): Promise<string> {
  const local = path.join(settings.PLAYGROUND_GRAPH_DIR, base.id);
  if (await exists(path.join(local, 'manifest.json'))) return local;

  const stored = base.files.filter((file) => file.path.startsWith(GRAPH_PREFIX));
  const manifest = stored.find((file) => file.path === `${GRAPH_PREFIX}manifest.json`);
  if (!manifest) {
    throw new PlaygroundUnavailable(`no playground graph for base model ${base.id}: neither ${local}/manifest.json nor stored ${GRAPH_PREFIX} files exist; queue its export with the admin call edge.requestBaseExport({ baseModelId: ${JSON.stringify(base.id)} }) and wait for the job, or export one with \`python -m worker export-onnx --model DIR --lora-inputs --no-merged --out DIR\` (in gpu-runner/) into ${local}`);
  }
  const cached = path.join(settings.PLAYGROUND_CACHE_DIR, `${base.id}-${manifest.sha256.slice(0, 16)}`);
  if (await exists(path.join(cached, 'manifest.json'))) return cached;

  const started = performance.now();
  const partial = `${cached}.partial-${randomUUID().slice(0, 8)}`;
  await fs.mkdir(partial, { recursive: true });
  try {
    for (const file of stored) {
      const name = file.path.slice(GRAPH_PREFIX.length);
      // Bundles are flat; a nested name would need folders the loader never looks in.
      if (name.includes('/') || name === '') throw new PlaygroundUnavailable(`stored graph file ${file.path} is nested; the ${GRAPH_PREFIX} folder must be flat`);
      await download(db, file, path.join(partial, name));
    }
    await fs.rename(partial, cached).catch(async (error: NodeJS.ErrnoException) => {
      // Another request finished the same download first; its copy is as good as ours.
      if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error;
      await fs.rm(partial, { recursive: true, force: true });
    });
  } catch (error) {
    await fs.rm(partial, { recursive: true, force: true });
    throw error;
  }
  logger.info({ baseModelId: base.id, files: stored.length, ms: Math.round(performance.now() - started) }, 'playground: stored graph downloaded');
  return cached;
}
