import { eq } from 'drizzle-orm';
import { Tokenizer } from '@huggingface/tokenizers';
import { z } from 'zod';
import { baseModels, type ModuleShape } from '@/drizzle/schema';
import type { Db } from '../db';
import { getObject } from '../storage';
import { blobObjectKey } from './uploads';
import { badRequest, notFound } from './errors';
import type { VerifiedFile } from './uploads';

/** The manifest the worker's `prepare-base` writes beside the weights. */
export const baseModelManifest = z.object({
  source: z.record(z.string(), z.unknown()),
  architecture: z.object({
    model_type: z.string(),
    hidden_size: z.number().int().positive(),
    num_hidden_layers: z.number().int().positive(),
    num_attention_heads: z.number().int().positive(),
    vocab_size: z.number().int().positive(),
  }).passthrough(),
  parameterCount: z.number().int().positive(),
  modules: z.record(z.string(), z.object({ kind: z.enum(['linear', 'embedding']), shape: z.tuple([z.number().int().positive(), z.number().int().positive()]) })),
});

// Files of a base model whose path starts with this prefix make up its playground graph bundle.
export const GRAPH_PREFIX = 'onnx/';

const REQUIRED_FILES = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];

export async function registerBaseModel(db: Db, input: { id: string; displayName: string; manifest: z.infer<typeof baseModelManifest>; files: VerifiedFile[] }) {
  for (const required of REQUIRED_FILES) {
    if (!input.files.some((file) => file.path === required)) throw badRequest(`base model ${input.id} needs ${required}; upload the folder written by \`python -m worker prepare-base\``);
  }
  const values = {
    id: input.id,
    displayName: input.displayName,
    architecture: input.manifest.architecture,
    modules: input.manifest.modules as Record<string, ModuleShape>,
    parameterCount: input.manifest.parameterCount,
    files: input.files.map(({ path, size, sha256 }) => ({ path, size, sha256 })),
    source: input.manifest.source,
  };
  await db.insert(baseModels).values(values).onConflictDoUpdate({ target: baseModels.id, set: values });
  return { id: input.id };
}

export async function getBaseModel(db: Db, id: string) {
  const [row] = await db.select().from(baseModels).where(eq(baseModels.id, id)).limit(1);
  if (!row) throw notFound(`base model ${JSON.stringify(id)}`);
  return row;
}

export async function listBaseModels(db: Db) {
  return db.select({ id: baseModels.id, displayName: baseModels.displayName, parameterCount: baseModels.parameterCount, architecture: baseModels.architecture })
    .from(baseModels).orderBy(baseModels.id);
}

// Tokenizers by base model id and tokenizer.json sha256; a few MB each, so kept for the process lifetime.
const tokenizers = new Map<string, Promise<Tokenizer>>();

/** Loads the base model's own tokenizer from its files in S3 (never from a hub). */
export function baseModelTokenizer(db: Db, model: typeof baseModels.$inferSelect): Promise<Tokenizer> {
  const json = model.files.find((file) => file.path === 'tokenizer.json')!;
  const config = model.files.find((file) => file.path === 'tokenizer_config.json')!;
  const cacheKey = `${model.id}:${json.sha256}`;
  let loading = tokenizers.get(cacheKey);
  if (!loading) {
    loading = (async () => {
      const [tokenizerJson, tokenizerConfig] = await Promise.all([getObject(await blobObjectKey(db, json.sha256)), getObject(await blobObjectKey(db, config.sha256))]);
      return new Tokenizer(JSON.parse(tokenizerJson.toString('utf8')), JSON.parse(tokenizerConfig.toString('utf8')));
    })();
    loading.catch(() => tokenizers.delete(cacheKey));
    tokenizers.set(cacheKey, loading);
  }
  return loading;
}

/**
 * Returns the base model's context length (max_position_embeddings), from the stored
 * architecture or, for a model registered before the manifest carried it, from its config.json.
 * Returns null when neither has a positive integer.
 */
export async function baseModelContextLength(db: Db, model: typeof baseModels.$inferSelect): Promise<number | null> {
  const isLength = (value: unknown): value is number => typeof value === 'number' && Number.isInteger(value) && value > 0;
  if (isLength(model.architecture.max_position_embeddings)) return model.architecture.max_position_embeddings;
  const file = model.files.find((entry) => entry.path === 'config.json');
  if (!file) return null;
  const config = JSON.parse((await getObject(await blobObjectKey(db, file.sha256))).toString('utf8')) as Record<string, unknown>;
  return isLength(config.max_position_embeddings) ? config.max_position_embeddings : null;
}
