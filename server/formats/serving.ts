import { listSome, type LoraModule } from './lora-tensors';
import type { LoraConfig } from './peft-config';

export interface ServingTarget {
  engine: string;
  supported: boolean;
  // Reasons for a "no", or the flags the engine needs; empty when nothing is needed.
  reasons: string[];
}

/** Adapter file contents that the serving rules depend on, as the gate found them. */
export interface AdapterLayout {
  // model_type of the base model (config.json), e.g. "llama", or null when unknown.
  modelType: string | null;
  // num_hidden_layers of the base model, or null when unknown.
  layerCount: number | null;
  // Modules with a checked LoRA pair, with the rank and alpha PEFT gives each.
  loraModules: LoraModule[];
  // Modules whose whole weight the file replaces (modules_to_save, saved embeddings).
  fullWeights: string[];
  // Modules with a bias tensor (lora_B.bias or a trained base-layer bias).
  biases: string[];
  // Modules with trainable token rows (trainable_token_indices).
  tokenAdapters: string[];
  // Reasons PeftModel.from_pretrained cannot load the adapter as trained; empty when it can.
  peftProblems: string[];
}

/** vLLM's default `max_lora_rank` (LoRAConfig in vllm/config/lora.py, v0.11 through v0.22). */
export const VLLM_DEFAULT_MAX_LORA_RANK = 16;
// The ranks vLLM accepts for `--max-lora-rank` (MaxLoRARanks in the same file).
const VLLM_MAX_LORA_RANKS = [1, 8, 16, 32, 64, 128, 256, 320, 512];

/**
 * LoRA target modules LoRAX supports per architecture (model_type), from LoRAX's
 * docs/models/adapters/lora.md ("Target Modules"). LoRAX skips LoRA weights on any other
 * module and only logs a warning.
 */
export const LORAX_TARGET_MODULES: Record<string, string[]> = {
  llama: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'lm_head'],
  mistral: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'lm_head'],
  mixtral: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'lm_head'],
  gemma: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  phi3: ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj', 'lm_head'],
  phi: ['q_proj', 'k_proj', 'v_proj', 'dense', 'fc1', 'fc2', 'lm_head'],
  qwen2: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'lm_head'],
  qwen: ['c_attn', 'c_proj', 'w1', 'w2', 'lm_head'],
  cohere: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'lm_head'],
  dbrx: ['Wqkv', 'out_proj', 'lm_head'],
  gpt2: ['c_attn', 'c_proj', 'c_fc'],
  bloom: ['query_key_value', 'dense', 'dense_h_to_4h', 'dense_4h_to_h', 'lm_head'],
};

/** Largest rank of LoRAX's custom SGMV shrink and BGMV kernels (MAX_RANK_CUSTOM, BGMV_MAX_RANK in utils/punica.py). */
export const LORAX_MAX_KERNEL_RANK = 128;

function maxRank(config: LoraConfig, layout: AdapterLayout): number {
  return Math.max(config.rank, ...layout.loraModules.map((module) => module.rank));
}

/**
 * Assesses vLLM. The rules follow the checks in vLLM's PEFTHelper (vllm/lora/peft_helper.py): rank
 * against max_lora_rank, no modules_to_save, no adapter bias, no DoRA.
 * NOTE: these rules read only the config; tensors the config does not declare (saved
 * embeddings, trainable token rows) are not assessed for vLLM.
 */
function vllmTarget(config: LoraConfig, layout: AdapterLayout): ServingTarget {
  const vllm: ServingTarget = { engine: 'vLLM', supported: true, reasons: [] };
  const rank = maxRank(config, layout);

  if (config.modulesToSave.length > 0) {
    vllm.supported = false;
    vllm.reasons.push(`modules_to_save (${config.modulesToSave.join(', ')}) is not supported by vLLM`);
  }
  if (config.useDora) {
    vllm.supported = false;
    vllm.reasons.push('DoRA (use_dora) is not supported by vLLM');
  }
  if (config.bias !== 'none') {
    vllm.supported = false;
    vllm.reasons.push(`bias "${config.bias}" is rejected by vLLM unless its LoRA bias support is enabled`);
  }
  const needed = VLLM_MAX_LORA_RANKS.find((allowed) => allowed >= rank);
  if (needed === undefined) {
    vllm.supported = false;
    vllm.reasons.push(`rank ${rank} exceeds vLLM's largest --max-lora-rank (512)`);
  } else if (rank > VLLM_DEFAULT_MAX_LORA_RANK) {
    vllm.reasons.push(`rank ${rank} exceeds vLLM's default max_lora_rank of ${VLLM_DEFAULT_MAX_LORA_RANK}; start vLLM with --max-lora-rank ${needed}`);
  }
  return vllm;
}

function loraxScale(alpha: number, rank: number, rslora: boolean): number {
  return rslora ? alpha / Math.sqrt(rank) : alpha / rank;
}

/** Groups per-layer modules by type (the last name part) and collects the layer indexes of each. */
function layersByType(modules: LoraModule[]): Map<string, { layers: Set<number>; ranks: Set<number> }> {
  const types = new Map<string, { layers: Set<number>; ranks: Set<number> }>();
  for (const module of modules) {
    const type = module.name.split('.').pop()!;
    const entry = types.get(type) ?? { layers: new Set<number>(), ranks: new Set<number>() };
    const layer = /\.(\d+)\./.exec(module.name);
    if (layer) entry.layers.add(Number(layer[1]));
    entry.ranks.add(module.rank);
    types.set(type, entry);
  }
  return types;
}

/**
 * Assesses LoRAX. The rules follow predibase/lorax: LoraConfig.map_weights_for_model and
 * LoraWeights.load in server/lorax_server/adapters/lora.py, the per-architecture target
 * list in docs/models/adapters/lora.md, and the kernel limits in
 * server/lorax_server/utils/punica.py. LoRAX reads only `<module>.lora_A.weight` and
 * `<module>.lora_B.weight`, so DoRA magnitudes, biases, modules_to_save weights,
 * embedding LoRA and trainable token rows are dropped without an error. It loads a module
 * type only when every layer has it, stacks the layers of a type into one tensor, and
 * scales every module by lora_alpha / r from the config (alpha / sqrt(r) with use_rslora).
 * These sources set no upper rank limit, and ranks above 128 use its fallback kernels.
 */
function loraxTarget(config: LoraConfig, layout: AdapterLayout): ServingTarget {
  const lorax: ServingTarget = { engine: 'LoRAX', supported: true, reasons: [] };
  const no = (reason: string) => {
    lorax.supported = false;
    lorax.reasons.push(reason);
  };

  const supportedTypes = layout.modelType ? LORAX_TARGET_MODULES[layout.modelType] : undefined;
  if (!supportedTypes) {
    no(`LoRAX lists LoRA target modules for ${Object.keys(LORAX_TARGET_MODULES).join(', ')}, not for base model type ${JSON.stringify(layout.modelType)}`);
  }
  if (config.useDora) no('LoRAX reads only lora_A and lora_B, so the DoRA magnitude vectors (use_dora) would be dropped');
  if (layout.fullWeights.length > 0) no(`LoRAX reads only lora_A and lora_B, so the whole weights saved for ${listSome(layout.fullWeights)} (modules_to_save or a saved embedding) would be dropped`);
  if (layout.biases.length > 0) no(`LoRAX reads only lora_A and lora_B weights, so the bias tensors of ${listSome(layout.biases)} would be dropped`);
  if (layout.tokenAdapters.length > 0) no(`LoRAX does not load trainable token rows (trainable_token_indices) of ${listSome(layout.tokenAdapters)}`);

  const embeddings = layout.loraModules.filter((module) => module.kind === 'embedding').map((module) => module.name);
  if (embeddings.length > 0) no(`LoRAX does not load LoRA on embedding layers (lora_embedding_A/B of ${listSome(embeddings)})`);

  const linear = layout.loraModules.filter((module) => module.kind === 'linear');
  const types = layersByType(linear);
  if (supportedTypes) {
    const unsupported = [...types.keys()].filter((type) => !supportedTypes.includes(type));
    if (unsupported.length > 0) no(`LoRAX skips LoRA weights on ${unsupported.join(', ')}; for ${layout.modelType} it supports ${supportedTypes.join(', ')}`);
  }
  for (const [type, { layers, ranks }] of types) {
    if (layers.size > 0 && layout.layerCount !== null && layers.size < layout.layerCount) {
      no(`${type} has LoRA weights in ${layers.size} of ${layout.layerCount} layers; LoRAX loads a module type only when every layer has it, so it would skip ${type}`);
    }
    if (ranks.size > 1) {
      no(`${type} has ranks ${[...ranks].sort((a, b) => a - b).join(', ')} across layers; LoRAX stacks the layers of a module type into one tensor, so it loads them only when its rank padding happens to make the ranks equal`);
    }
  }

  const configScale = loraxScale(config.alpha, config.rank, config.useRslora);
  const rescaled = linear.filter((module) => Math.abs(loraxScale(module.alpha, module.rank, config.useRslora) - configScale) > 1e-9 * configScale);
  if (rescaled.length > 0) {
    no(`LoRAX scales every module by lora_alpha and r from adapter_config.json (${config.alpha} and ${config.rank}), but rank_pattern or alpha_pattern gives ${listSome(rescaled.map((module) => `${module.name} rank ${module.rank}, alpha ${module.alpha}`), 2)}`);
  }

  const rank = maxRank(config, layout);
  if (lorax.supported && rank > LORAX_MAX_KERNEL_RANK) {
    lorax.reasons.push(`rank ${rank} exceeds ${LORAX_MAX_KERNEL_RANK}, the largest rank of LoRAX's custom SGMV and BGMV kernels; LoRAX runs it on its fallback kernels`);
  }
  return lorax;
}

/**
 * Lists where an adapter that passed the compatibility gate can be served, with a reason for
 * each "no": PEFT / transformers (the reference), vLLM and LoRAX.
 */
export function servingTargets(config: LoraConfig, layout: AdapterLayout): ServingTarget[] {
  const peft: ServingTarget = { engine: 'PEFT / transformers', supported: layout.peftProblems.length === 0, reasons: [...layout.peftProblems] };
  return [peft, vllmTarget(config, layout), loraxTarget(config, layout)];
}
