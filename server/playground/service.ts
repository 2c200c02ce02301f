/**
 * The playground's domain logic: finding the adapter version and its base graph, checking
 * that they can run, and saving a generation the user chose to keep.
 */
import { and, desc, eq } from 'drizzle-orm';
import { playgroundSaves } from '@/drizzle/schema';
import type { Db } from '../db';
import type { Env } from '../env';
import { LoraInputsError } from '../formats/lora-inputs';
import { PeftConfigError } from '../formats/peft-config';
import { SafetensorsError } from '../formats/safetensors';
import { getAdapterPage } from '../services/adapters';
import type { Reader } from '../services/visibility';
import { getBaseModel } from '../services/base-models';
import { badRequest } from '../services/errors';
import { blobObjectKey } from '../services/uploads';
import { getObject } from '../storage';
import { adapterFeeds } from './adapters';
import { baseGraph, PlaygroundUnavailable } from './graph';
import { graphFolder } from './graph-source';

// Larger adapter files are rejected before download: a LoRA adapter of a base model small enough
// for the playground stays far below it (rank 64 on every module of a 500M model is about 100 MiB).
const MAX_ADAPTER_BYTES = 1024 * 1024 * 1024;

export type PlaygroundSettings = Pick<Env, 'PLAYGROUND_GRAPH_DIR' | 'PLAYGROUND_CACHE_DIR' | 'PLAYGROUND_MAX_PARAMETERS' | 'PLAYGROUND_ADAPTER_CACHE_BYTES'>;

/**
 * Loads what a playground request runs on: the version's page, the base model's cached graph
 * and the adapter's LoRA feeds. Throws BAD_REQUEST for an adapter or base model the
 * playground cannot run, with the reason, and NOT_FOUND for a missing adapter or version.
 */
export async function preparePlayground(db: Db, reader: Reader, settings: PlaygroundSettings, input: { namespace: string; name: string; version?: number }) {
  const page = await getAdapterPage(db, reader, input.namespace, input.name, input.version);
  const base = await getBaseModel(db, page.baseModelId);
  if (base.parameterCount > settings.PLAYGROUND_MAX_PARAMETERS) {
    throw badRequest(`base model ${base.id} has ${base.parameterCount.toLocaleString('en-US')} parameters, above the playground's limit of ${settings.PLAYGROUND_MAX_PARAMETERS.toLocaleString('en-US')} (PLAYGROUND_MAX_PARAMETERS); larger models need a GPU server`);
  }

  const config = page.files.find((file) => file.path === 'adapter_config.json');
  const weights = page.files.find((file) => file.path === 'adapter_model.safetensors');
  if (!config || !weights) throw badRequest(`${page.namespace}/${page.name} version ${page.version.version} has no adapter_config.json and adapter_model.safetensors, which the playground needs`);
  if (weights.size > MAX_ADAPTER_BYTES) throw badRequest(`adapter_model.safetensors is ${weights.size} bytes, above the playground's limit of ${MAX_ADAPTER_BYTES} bytes`);

  try {
    const graph = await baseGraph(base.id, await graphFolder(db, base, settings));
    const feeds = await adapterFeeds(graph, {
      configSha256: config.sha256,
      weightsSha256: weights.sha256,
      readConfig: async () => getObject(await blobObjectKey(db, config.sha256)),
      readWeights: async () => getObject(await blobObjectKey(db, weights.sha256)),
    }, settings.PLAYGROUND_ADAPTER_CACHE_BYTES);
    return { page, graph, feeds };
  } catch (error) {
    if (error instanceof LoraInputsError || error instanceof PeftConfigError || error instanceof SafetensorsError) {
      throw badRequest(`${page.namespace}/${page.name} version ${page.version.version}: ${error.message}`);
    }
    throw error;
  }
}

export { PlaygroundUnavailable };

export interface SaveInput {
  userId: string;
  namespace: string;
  name: string;
  version: number;
  prompt: string;
  temperature: number;
  maxTokens: number;
  seed: number;
  baseOutput: string;
  adapterOutput: string;
}

/** Stores one generation for its user; the adapter version must exist. */
export async function saveGeneration(db: Db, reader: Reader, input: SaveInput) {
  const page = await getAdapterPage(db, reader, input.namespace, input.name, input.version);
  const [row] = await db.insert(playgroundSaves).values({
    userId: input.userId, adapterVersionId: page.version.id, prompt: input.prompt, temperature: input.temperature,
    maxTokens: input.maxTokens, seed: input.seed, baseOutput: input.baseOutput, adapterOutput: input.adapterOutput,
  }).returning({ id: playgroundSaves.id, createdAt: playgroundSaves.createdAt });
  return row!;
}

/** Lists the caller's saved generations of one adapter version, newest first. */
export async function listSaved(db: Db, reader: Reader, input: { userId: string; namespace: string; name: string; version?: number }) {
  const page = await getAdapterPage(db, reader, input.namespace, input.name, input.version);
  return db.select({
    id: playgroundSaves.id, prompt: playgroundSaves.prompt, temperature: playgroundSaves.temperature, maxTokens: playgroundSaves.maxTokens,
    seed: playgroundSaves.seed, baseOutput: playgroundSaves.baseOutput, adapterOutput: playgroundSaves.adapterOutput, createdAt: playgroundSaves.createdAt,
  }).from(playgroundSaves)
    .where(and(eq(playgroundSaves.userId, input.userId), eq(playgroundSaves.adapterVersionId, page.version.id)))
    .orderBy(desc(playgroundSaves.createdAt)).limit(50);
}
