import type { LoraModule } from './lora-tensors';
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

/**
 * Lists where an adapter that passed the compatibility gate can be served, with a reason for
 * each "no": PEFT / transformers (the reference) and vLLM.
 */
export function servingTargets(config: LoraConfig, layout: AdapterLayout): ServingTarget[] {
  const peft: ServingTarget = { engine: 'PEFT / transformers', supported: layout.peftProblems.length === 0, reasons: [...layout.peftProblems] };
  return [peft, vllmTarget(config, layout)];
}
