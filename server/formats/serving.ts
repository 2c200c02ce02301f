import type { LoraConfig } from './peft-config';

export interface ServingTarget {
  engine: string;
  supported: boolean;
  // Reasons for a "no", or the flags the engine needs; empty when nothing is needed.
  reasons: string[];
}

/** vLLM's default `max_lora_rank` (LoRAConfig in vllm/config/lora.py, v0.11 through v0.22). */
export const VLLM_DEFAULT_MAX_LORA_RANK = 16;
// The ranks vLLM accepts for `--max-lora-rank` (MaxLoRARanks in the same file).
const VLLM_MAX_LORA_RANKS = [1, 8, 16, 32, 64, 128, 256, 320, 512];

/**
 * Says where an adapter that passed the compatibility gate can be served, with a reason for
 * each "no". The vLLM rules follow the checks in vLLM's PEFTHelper (vllm/lora/peft_helper.py):
 * rank against max_lora_rank, no modules_to_save, no adapter bias, no DoRA.
 * NOTE: LoRAX is not assessed yet.
 */
export function servingTargets(config: LoraConfig, ranks: number[]): ServingTarget[] {
  const maxRank = Math.max(config.rank, ...ranks);
  const vllm: ServingTarget = { engine: 'vLLM', supported: true, reasons: [] };

  if (config.modulesToSave.length > 0) {
    vllm.supported = false;
    vllm.reasons.push(`modules_to_save (${config.modulesToSave.join(', ')}) is not supported by vLLM`);
  }
  if (config.useDora) {
    vllm.supported = false;
    vllm.reasons.push('DoRA (use_dora) is not supported by vLLM');
  }
  const bias = config.raw.bias;
  if (typeof bias === 'string' && bias !== 'none') {
    vllm.supported = false;
    vllm.reasons.push(`bias "${bias}" is rejected by vLLM unless its LoRA bias support is enabled`);
  }
  const needed = VLLM_MAX_LORA_RANKS.find((rank) => rank >= maxRank);
  if (needed === undefined) {
    vllm.supported = false;
    vllm.reasons.push(`rank ${maxRank} exceeds vLLM's largest --max-lora-rank (512)`);
  } else if (maxRank > VLLM_DEFAULT_MAX_LORA_RANK) {
    vllm.reasons.push(`rank ${maxRank} exceeds vLLM's default max_lora_rank of ${VLLM_DEFAULT_MAX_LORA_RANK}; start vLLM with --max-lora-rank ${needed}`);
  }

  return [{ engine: 'PEFT / transformers', supported: true, reasons: [] }, vllm];
}
