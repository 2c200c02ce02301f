/**
 * Shared-base ONNX graphs for the playground: one onnxruntime-node InferenceSession per base
 * model, created once per process and reused by every adapter of that base model. Adapters
 * reach the session only as input tensors (server/playground/adapters.ts), so switching
 * between them never reloads the base model.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { z } from 'zod';
import { chatTemplateOf, specialTokensOf } from '../formats/token-counter';
import type { LoraGraphShape } from '../formats/lora-inputs';
import { logger } from '../logger';
import { playgroundCounters } from './metrics';

const tensorSpec = z.object({ name: z.string(), dtype: z.string(), shape: z.array(z.union([z.number().int(), z.string()])) });

/** The part of the exporter's manifest.json (docs/edge.md) the playground reads. */
export const graphManifest = z.object({
  numLayers: z.number().int().positive(),
  numKeyValueHeads: z.number().int().positive(),
  headDim: z.number().int().positive(),
  vocabSize: z.number().int().positive(),
  eosTokenId: z.union([z.number().int(), z.array(z.number().int())]).nullish(),
  maxRank: z.number().int().positive(),
  loraModules: z.array(z.string()).min(1),
  variants: z.array(z.object({ name: z.string(), file: z.string(), dataFiles: z.array(z.string()).default([]), inputs: z.array(tensorSpec), outputs: z.array(tensorSpec) })),
  files: z.array(z.object({ path: z.string(), size: z.number().int().nonnegative(), sha256: z.string() })),
  tokenizer: z.array(z.string()).default([]),
});
export type GraphManifest = z.infer<typeof graphManifest>;

export class PlaygroundUnavailable extends Error {
  override name = 'PlaygroundUnavailable';
}

export interface BaseGraph {
  baseModelId: string;
  dir: string;
  manifest: GraphManifest;
  shape: LoraGraphShape;
  session: ort.InferenceSession;
  // All-zero LoRA inputs (the base model); tensors of one shape share one buffer.
  zeroLora: Record<string, ort.Tensor>;
  tokenizer: Tokenizer;
  chatTemplate: Template | null;
  specialTokens: Record<string, string>;
  eosTokenIds: Set<number>;
}

const graphs = new Map<string, Promise<BaseGraph>>();

/** Resolves a file the manifest names inside `dir`, rejecting names that would leave it. */
function fileIn(dir: string, name: string): string {
  const resolved = path.resolve(dir, name);
  if (path.dirname(resolved) !== path.resolve(dir)) throw new PlaygroundUnavailable(`manifest.json names file ${JSON.stringify(name)} outside the graph folder ${dir}`);
  return resolved;
}

function loraShape(manifest: GraphManifest, inputs: z.infer<typeof tensorSpec>[]): LoraGraphShape {
  const modules: LoraGraphShape['modules'] = {};
  for (const module of manifest.loraModules) {
    const a = inputs.find((input) => input.name === `lora.0.${module}.A`);
    const b = inputs.find((input) => input.name === `lora.0.${module}.B`);
    const inFeatures = a?.shape[1];
    const outFeatures = b?.shape[0];
    if (typeof inFeatures !== 'number' || typeof outFeatures !== 'number') throw new PlaygroundUnavailable(`manifest.json lists module ${module} but no numeric shapes for lora.0.${module}.A and .B`);
    modules[module] = { inFeatures, outFeatures };
  }
  // Graphs exported before the rank was dynamic list the rank as a number, and get padded factors.
  const first = manifest.loraModules[0]!;
  const dynamicRank = typeof inputs.find((input) => input.name === `lora.0.${first}.A`)?.shape[0] === 'string';
  return { numLayers: manifest.numLayers, maxRank: manifest.maxRank, dynamicRank, modules };
}

async function loadGraph(baseModelId: string, dir: string): Promise<BaseGraph> {
  const manifestPath = path.join(dir, 'manifest.json');
  let manifestText: string;
  try {
    manifestText = await fs.readFile(manifestPath, 'utf8');
  } catch {
    throw new PlaygroundUnavailable(`no playground graph for base model ${baseModelId}: ${manifestPath} is missing; export one with \`python -m worker export-onnx --model DIR --lora-inputs --no-merged --out ${dir}\` in gpu-runner/`);
  }
  const parsed = graphManifest.safeParse(JSON.parse(manifestText));
  if (!parsed.success) throw new PlaygroundUnavailable(`${manifestPath} is not a shared-base graph manifest (${parsed.error.issues.map((issue) => issue.path.join('.') + ': ' + issue.message).join('; ')}); export it with --lora-inputs`);
  const manifest = parsed.data;
  const variant = manifest.variants.find((entry) => entry.name === 'lora-inputs');
  if (!variant) throw new PlaygroundUnavailable(`${manifestPath} has no lora-inputs variant; export the base model with --lora-inputs`);

  // Sizes are checked against the manifest so a cut-short copy fails here, not inside onnxruntime.
  for (const file of manifest.files) {
    const stat = await fs.stat(fileIn(dir, file.path)).catch(() => null);
    if (!stat || stat.size !== file.size) throw new PlaygroundUnavailable(`${path.join(dir, file.path)} is ${stat ? `${stat.size} bytes` : 'missing'} but manifest.json lists ${file.size} bytes; export the graph again`);
  }

  const started = performance.now();
  const session = await ort.InferenceSession.create(fileIn(dir, variant.file), { graphOptimizationLevel: 'all', executionMode: 'sequential' });
  playgroundCounters.baseSessionLoads += 1;
  logger.info({ baseModelId, dir, ms: Math.round(performance.now() - started) }, 'playground: base model session created');

  const shape = loraShape(manifest, variant.inputs);
  // With a dynamic rank, rank-1 zeros are the cheapest factors that add nothing.
  const zeroRank = shape.dynamicRank ? 1 : shape.maxRank;
  const zeroBuffers = new Map<number, Float32Array>();
  const zeroLora: Record<string, ort.Tensor> = {};
  for (let layer = 0; layer < shape.numLayers; layer++) {
    for (const [module, { inFeatures, outFeatures }] of Object.entries(shape.modules)) {
      for (const [factor, dims] of [['A', [zeroRank, inFeatures]], ['B', [outFeatures, zeroRank]]] as const) {
        const size = dims[0] * dims[1];
        let buffer = zeroBuffers.get(size);
        if (!buffer) {
          buffer = new Float32Array(size);
          zeroBuffers.set(size, buffer);
        }
        zeroLora[`lora.${layer}.${module}.${factor}`] = new ort.Tensor('float32', buffer, [...dims]);
      }
    }
  }

  // The model's own tokenizer files, copied beside the graph by the exporter; never a hub.
  // NOTE: @huggingface/transformers 4.3.2 tokenizes with these same two packages
  // (@huggingface/tokenizers and @huggingface/jinja) but pins onnxruntime-node 1.30.0 and pulls
  // in sharp and onnxruntime-web, so it would add a second native runtime beside 1.31.1.
  const tokenizerJson = JSON.parse(await fs.readFile(fileIn(dir, 'tokenizer.json'), 'utf8'));
  const tokenizerConfig = JSON.parse(await fs.readFile(fileIn(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  const templateFile = await fs.readFile(fileIn(dir, 'chat_template.jinja'), 'utf8').catch(() => null);
  const templateText = chatTemplateOf(tokenizerConfig, templateFile);
  const tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
  const specialTokens = specialTokensOf(tokenizerConfig);

  const eosTokenIds = new Set<number>([manifest.eosTokenId ?? []].flat());
  if (specialTokens.eos_token) {
    const id = tokenizer.token_to_id(specialTokens.eos_token);
    if (id !== undefined && id !== null) eosTokenIds.add(id);
  }

  return {
    baseModelId, dir, manifest, shape, session, zeroLora, tokenizer,
    chatTemplate: templateText ? new Template(templateText) : null, specialTokens, eosTokenIds,
  };
}

/**
 * Returns the cached graph of a base model loaded from `dir`, creating its session on first
 * use. A failed load is not cached, so fixing the folder needs no restart.
 */
export function baseGraph(baseModelId: string, dir: string): Promise<BaseGraph> {
  const key = `${baseModelId}:${path.resolve(dir)}`;
  let loading = graphs.get(key);
  if (!loading) {
    loading = loadGraph(baseModelId, dir);
    loading.catch(() => graphs.delete(key));
    graphs.set(key, loading);
  }
  return loading;
}
