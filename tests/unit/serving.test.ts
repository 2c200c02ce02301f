import { describe, expect, it } from 'vitest';
import { parsePeftConfig } from '../../server/formats/peft-config';
import { servingTargets, type AdapterLayout } from '../../server/formats/serving';
import type { LoraModule } from '../../server/formats/lora-tensors';

const LAYERS = 2;

/** LoRA modules of the given types in every layer, with one rank and alpha. */
function modules(types: string[], rank = 8, alpha = 16, layers = [0, 1]): LoraModule[] {
  return layers.flatMap((layer) => types.map((type) => ({ name: `model.layers.${layer}.self_attn.${type}`, kind: 'linear' as const, rank, alpha })));
}

function layout(extra: Partial<AdapterLayout> = {}): AdapterLayout {
  return { modelType: 'llama', layerCount: LAYERS, loraModules: modules(['q_proj']), fullWeights: [], biases: [], tokenAdapters: [], peftProblems: [], ...extra };
}

const targets = (extra: Record<string, unknown>, adapter: Partial<AdapterLayout> = {}) => {
  const config = parsePeftConfig(JSON.stringify({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj'], ...extra }));
  return servingTargets(config, layout(adapter));
};
const vllm = (extra: Record<string, unknown>, adapter: Partial<AdapterLayout> = {}) => targets(extra, adapter).find((t) => t.engine === 'vLLM')!;

describe('serving targets', () => {
  it('lists PEFT and vLLM', () => {
    expect(targets({}).map((t) => t.engine)).toEqual(['PEFT / transformers', 'vLLM']);
  });

  it('marks PEFT "no" with the problems the gate found', () => {
    const peft = targets({}, { peftProblems: ['PEFT ignores the LoRA tensors of 2 modules'] })[0]!;
    expect(peft).toEqual({ engine: 'PEFT / transformers', supported: false, reasons: ['PEFT ignores the LoRA tensors of 2 modules'] });
  });
});

describe('vLLM rules', () => {
  it('accepts a rank-8 adapter on vLLM defaults', () => {
    expect(vllm({})).toEqual({ engine: 'vLLM', supported: true, reasons: [] });
  });

  it('asks for a larger max-lora-rank above 16', () => {
    expect(vllm({ r: 48 })).toEqual({ engine: 'vLLM', supported: true, reasons: ["rank 48 exceeds vLLM's default max_lora_rank of 16; start vLLM with --max-lora-rank 64"] });
  });

  it('uses the largest rank of a rank pattern', () => {
    expect(vllm({}, { loraModules: [...modules(['q_proj']), ...modules(['v_proj'], 32)] }).reasons).toEqual(["rank 32 exceeds vLLM's default max_lora_rank of 16; start vLLM with --max-lora-rank 32"]);
  });

  it('rejects modules_to_save and DoRA with reasons', () => {
    const target = vllm({ modules_to_save: ['lm_head'], use_dora: true });
    expect(target.supported).toBe(false);
    expect(target.reasons).toEqual(['modules_to_save (lm_head) is not supported by vLLM', 'DoRA (use_dora) is not supported by vLLM']);
  });

  it('rejects a rank above 512', () => {
    expect(vllm({ r: 1024 }).reasons).toEqual(["rank 1024 exceeds vLLM's largest --max-lora-rank (512)"]);
  });
});
