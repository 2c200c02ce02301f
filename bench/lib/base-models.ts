/**
 * Base models for the benchmarks: the published architectures of a few small and mid-size
 * causal LMs, turned into the module table that `python -m worker prepare-base` writes
 * (Llama-style names and [out_features, in_features] shapes), and LoRA tensors that fit them.
 * No weights are involved: registration uploads small placeholder files.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { ModuleShape } from '../../drizzle/schema';
import type { TensorInfo } from '../../server/formats/safetensors';
import { announce, describeFolder, putFiles } from '../../cli/upload';
import type { Client } from '../../lib/trpc-client';
import { finalizeUpload } from '../../lib/upload-protocol';

export interface BenchBaseModel {
  id: string;
  displayName: string;
  // The Hub repository that model cards and adapter_config.json name.
  hubId: string;
  family: string;
  architecture: {
    model_type: string;
    hidden_size: number;
    num_hidden_layers: number;
    num_attention_heads: number;
    num_key_value_heads: number;
    vocab_size: number;
    intermediate_size: number;
  };
  // From each model's published card or config; the embedding is counted once when tied.
  parameterCount: number;
  // Share of the seeded adapters built on this model.
  weight: number;
}

export const BASE_MODELS: BenchBaseModel[] = [
  {
    id: 'smollm2-135m-instruct', displayName: 'SmolLM2-135M-Instruct', hubId: 'HuggingFaceTB/SmolLM2-135M-Instruct', family: 'smollm2',
    architecture: { model_type: 'llama', hidden_size: 576, num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3, vocab_size: 49152, intermediate_size: 1536 },
    parameterCount: 134_515_008, weight: 0.22,
  },
  {
    id: 'smollm2-360m-instruct', displayName: 'SmolLM2-360M-Instruct', hubId: 'HuggingFaceTB/SmolLM2-360M-Instruct', family: 'smollm2',
    architecture: { model_type: 'llama', hidden_size: 960, num_hidden_layers: 32, num_attention_heads: 15, num_key_value_heads: 5, vocab_size: 49152, intermediate_size: 2560 },
    parameterCount: 361_821_120, weight: 0.12,
  },
  {
    id: 'qwen2.5-0.5b-instruct', displayName: 'Qwen2.5-0.5B-Instruct', hubId: 'Qwen/Qwen2.5-0.5B-Instruct', family: 'qwen2',
    architecture: { model_type: 'qwen2', hidden_size: 896, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, vocab_size: 151936, intermediate_size: 4864 },
    parameterCount: 494_032_768, weight: 0.2,
  },
  {
    id: 'llama-3.2-1b-instruct', displayName: 'Llama-3.2-1B-Instruct', hubId: 'meta-llama/Llama-3.2-1B-Instruct', family: 'llama',
    architecture: { model_type: 'llama', hidden_size: 2048, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 128256, intermediate_size: 8192 },
    parameterCount: 1_235_814_400, weight: 0.2,
  },
  {
    id: 'llama-3.1-8b-instruct', displayName: 'Llama-3.1-8B-Instruct', hubId: 'meta-llama/Llama-3.1-8B-Instruct', family: 'llama',
    architecture: { model_type: 'llama', hidden_size: 4096, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 128256, intermediate_size: 14336 },
    parameterCount: 8_030_261_248, weight: 0.16,
  },
  {
    id: 'mistral-7b-instruct-v0.3', displayName: 'Mistral-7B-Instruct-v0.3', hubId: 'mistralai/Mistral-7B-Instruct-v0.3', family: 'mistral',
    architecture: { model_type: 'mistral', hidden_size: 4096, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 32768, intermediate_size: 14336 },
    parameterCount: 7_248_023_552, weight: 0.1,
  },
];

export const ATTENTION_MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj'];
export const MLP_MODULES = ['gate_proj', 'up_proj', 'down_proj'];

/** Returns every nn.Linear and nn.Embedding of a Llama-style model, in `named_modules()` order. */
export function baseModules(model: BenchBaseModel): Record<string, ModuleShape> {
  const a = model.architecture;
  const headDim = a.hidden_size / a.num_attention_heads;
  const kvWidth = a.num_key_value_heads * headDim;
  const modules: Record<string, ModuleShape> = { 'model.embed_tokens': { kind: 'embedding', shape: [a.vocab_size, a.hidden_size] } };
  for (let layer = 0; layer < a.num_hidden_layers; layer++) {
    const prefix = `model.layers.${layer}`;
    modules[`${prefix}.self_attn.q_proj`] = { kind: 'linear', shape: [a.hidden_size, a.hidden_size] };
    modules[`${prefix}.self_attn.k_proj`] = { kind: 'linear', shape: [kvWidth, a.hidden_size] };
    modules[`${prefix}.self_attn.v_proj`] = { kind: 'linear', shape: [kvWidth, a.hidden_size] };
    modules[`${prefix}.self_attn.o_proj`] = { kind: 'linear', shape: [a.hidden_size, a.hidden_size] };
    modules[`${prefix}.mlp.gate_proj`] = { kind: 'linear', shape: [a.intermediate_size, a.hidden_size] };
    modules[`${prefix}.mlp.up_proj`] = { kind: 'linear', shape: [a.intermediate_size, a.hidden_size] };
    modules[`${prefix}.mlp.down_proj`] = { kind: 'linear', shape: [a.hidden_size, a.intermediate_size] };
  }
  modules.lm_head = { kind: 'linear', shape: [a.vocab_size, a.hidden_size] };
  return modules;
}

/**
 * Lists the tensors PEFT saves for a LoRA on `targets` (short module names such as q_proj)
 * with `rank`, plus full weights for `modulesToSave`, laid out back to back like a
 * safetensors data section. `bytesPerValue` is 4 for F32 and 2 for BF16 or F16.
 */
export function loraTensorTable(modules: Record<string, ModuleShape>, options: { rank: number; targets: string[]; modulesToSave?: string[]; dtype?: 'F32' | 'BF16' | 'F16' }): TensorInfo[] {
  const dtype = options.dtype ?? 'F32';
  const bytesPerValue = dtype === 'F32' ? 4 : 2;
  const tensors: TensorInfo[] = [];
  let offset = 0;
  const add = (name: string, shape: number[]) => {
    const end = offset + shape[0]! * shape[1]! * bytesPerValue;
    tensors.push({ name, dtype, shape, begin: offset, end });
    offset = end;
  };
  for (const [name, module] of Object.entries(modules)) {
    if (module.kind !== 'linear' || !options.targets.some((target) => name.endsWith(`.${target}`))) continue;
    const [outFeatures, inFeatures] = module.shape;
    add(`base_model.model.${name}.lora_A.weight`, [options.rank, inFeatures]);
    add(`base_model.model.${name}.lora_B.weight`, [outFeatures, options.rank]);
  }
  for (const name of options.modulesToSave ?? []) {
    const module = modules[name];
    if (module) add(`base_model.model.${name}.weight`, [...module.shape]);
  }
  return tensors;
}

/** Bytes of the safetensors header JSON for a tensor table, as `safetensorsFile` writes it. */
function headerJson(tensors: TensorInfo[]): Buffer {
  const header: Record<string, unknown> = {};
  for (const tensor of tensors) header[tensor.name] = { dtype: tensor.dtype, shape: tensor.shape, data_offsets: [tensor.begin, tensor.end] };
  return Buffer.from(JSON.stringify(header));
}

/** Size in bytes of the safetensors file holding `tensors`: length prefix, header, data. */
export function safetensorsSize(tensors: TensorInfo[]): number {
  return 8 + headerJson(tensors).length + (tensors.at(-1)?.end ?? 0);
}

/** Writes a safetensors file whose tensors are all zeros, streaming the data section. */
export async function writeZeroSafetensors(file: string, tensors: TensorInfo[]): Promise<void> {
  const json = headerJson(tensors);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  const handle = await fs.open(file, 'w');
  try {
    await handle.write(Buffer.concat([prefix, json]));
    const zeros = Buffer.alloc(1024 * 1024);
    let left = tensors.at(-1)?.end ?? 0;
    while (left > 0) {
      const chunk = Math.min(left, zeros.length);
      await handle.write(zeros, 0, chunk);
      left -= chunk;
    }
  } finally {
    await handle.close();
  }
}

/**
 * Registers a base model through the admin API with placeholder files in place of the real
 * weights and tokenizer, which nothing in these benchmarks loads. The stored row has the
 * model's real module table and parameter count, which publishing checks adapters against.
 */
export async function registerBenchBaseModel(client: Client, model: BenchBaseModel, workDir: string): Promise<void> {
  const dir = path.join(workDir, model.id);
  await fs.mkdir(dir, { recursive: true });
  const placeholder = (what: string) => JSON.stringify({ placeholder: `${what} of ${model.hubId}; the benchmarks never load it` });
  const architectures = { llama: ['LlamaForCausalLM'], qwen2: ['Qwen2ForCausalLM'], mistral: ['MistralForCausalLM'] }[model.architecture.model_type];
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify({ ...model.architecture, architectures }, null, 2));
  await fs.writeFile(path.join(dir, 'tokenizer.json'), placeholder('tokenizer'));
  await fs.writeFile(path.join(dir, 'tokenizer_config.json'), placeholder('tokenizer configuration'));
  await writeZeroSafetensors(path.join(dir, 'model.safetensors'), [{ name: 'placeholder', dtype: 'F32', shape: [1, 1], begin: 0, end: 4 }]);
  const files = await describeFolder(dir);
  const begun = await client.baseModels.beginUpload.mutate({ files: files.map(announce) });
  await putFiles(files, begun.files);
  await finalizeUpload(() => client.baseModels.register.mutate({
    uploadId: begun.uploadId,
    id: model.id,
    displayName: model.displayName,
    manifest: {
      source: { kind: 'benchmark-placeholder', hubId: model.hubId },
      architecture: model.architecture,
      parameterCount: model.parameterCount,
      modules: baseModules(model),
    },
  }));
}

/** Hex sha256 of a string or buffer. */
export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
