/**
 * LoRA input tensors of adapter versions, kept in a least-recently-used cache with a cap in
 * bytes. A version is immutable, so its tensors never go stale. The key is the sha256 of its
 * weights and config, so two versions with the same files share one entry.
 */
import * as ort from 'onnxruntime-node';
import { loraInputsFromAdapter } from '../formats/lora-inputs';
import { parsePeftConfig } from '../formats/peft-config';
import type { BaseGraph } from './graph';
import { playgroundCounters } from './metrics';

export interface AdapterFiles {
  configSha256: string;
  weightsSha256: string;
  readConfig: () => Promise<Buffer>;
  readWeights: () => Promise<Buffer>;
}

interface Entry {
  feeds: Record<string, ort.Tensor>;
  bytes: number;
}

// Map iteration order is insertion order, so the first key is the least recently used.
const cache = new Map<string, Entry>();
let cachedBytes = 0;

function remember(key: string, entry: Entry, capBytes: number): void {
  cache.set(key, entry);
  cachedBytes += entry.bytes;
  for (const [oldKey, old] of cache) {
    if (cachedBytes <= capBytes || oldKey === key) break;
    cache.delete(oldKey);
    cachedBytes -= old.bytes;
  }
  playgroundCounters.adapterCacheBytes = cachedBytes;
}

/**
 * Returns the full LoRA feeds for an adapter on `graph`: its own padded tensors, and the
 * shared zero tensors for every module it does not target. An entry larger than the cap is
 * used for this request and not kept.
 */
export async function adapterFeeds(graph: BaseGraph, files: AdapterFiles, capBytes: number): Promise<Record<string, ort.Tensor>> {
  const key = `${graph.baseModelId}:${graph.shape.maxRank}:${files.configSha256}:${files.weightsSha256}`;
  const hit = cache.get(key);
  if (hit) {
    cache.delete(key);
    cache.set(key, hit);
    playgroundCounters.adapterCacheHits += 1;
    return hit.feeds;
  }

  const [configBytes, weights] = await Promise.all([files.readConfig(), files.readWeights()]);
  const inputs = loraInputsFromAdapter(parsePeftConfig(configBytes.toString('utf8')), weights, graph.shape);
  const feeds: Record<string, ort.Tensor> = { ...graph.zeroLora };
  // ort.Tensor wraps the typed array without copying it.
  for (const [name, { data, dims }] of inputs.tensors) feeds[name] = new ort.Tensor('float32', data, dims);
  playgroundCounters.adapterLoads += 1;
  if (inputs.bytes <= capBytes) remember(key, { feeds, bytes: inputs.bytes }, capBytes);
  return feeds;
}
