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
const lorax = (extra: Record<string, unknown>, adapter: Partial<AdapterLayout> = {}) => targets(extra, adapter).find((t) => t.engine === 'LoRAX')!;

describe('serving targets', () => {
  it('lists PEFT, vLLM and LoRAX', () => {
    expect(targets({}).map((t) => t.engine)).toEqual(['PEFT / transformers', 'vLLM', 'LoRAX']);
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

describe('LoRAX rules', () => {
  it('accepts attention LoRA on Llama in every layer', () => {
    expect(lorax({}, { loraModules: modules(['q_proj', 'k_proj', 'v_proj', 'o_proj']) })).toEqual({ engine: 'LoRAX', supported: true, reasons: [] });
  });

  it('accepts use_rslora, which LoRAX scales by alpha / sqrt(r)', () => {
    expect(lorax({ use_rslora: true }).supported).toBe(true);
  });

  it('accepts lm_head on Llama but not on Gemma', () => {
    const lmHead: LoraModule = { name: 'lm_head', kind: 'linear', rank: 8, alpha: 16 };
    expect(lorax({}, { loraModules: [...modules(['q_proj']), lmHead] }).supported).toBe(true);
    const gemma = lorax({}, { modelType: 'gemma', loraModules: [...modules(['q_proj']), lmHead] });
    expect(gemma.supported).toBe(false);
    expect(gemma.reasons).toEqual(['LoRAX skips LoRA weights on lm_head; for gemma it supports q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj']);
  });

  it('rejects an architecture LoRAX does not list', () => {
    const target = lorax({}, { modelType: 'mamba' });
    expect(target.supported).toBe(false);
    expect(target.reasons[0]).toMatch(/^LoRAX lists LoRA target modules for llama, mistral, .*, not for base model type "mamba"$/);
  });

  it('rejects DoRA because LoRAX drops the magnitudes', () => {
    expect(lorax({ use_dora: true }).reasons).toEqual(['LoRAX reads only lora_A and lora_B, so the DoRA magnitude vectors (use_dora) would be dropped']);
  });

  it('rejects saved whole weights such as modules_to_save', () => {
    const target = lorax({ modules_to_save: ['lm_head'] }, { fullWeights: ['lm_head'] });
    expect(target.supported).toBe(false);
    expect(target.reasons).toEqual(['LoRAX reads only lora_A and lora_B, so the whole weights saved for lm_head (modules_to_save or a saved embedding) would be dropped']);
  });

  it('rejects bias tensors and trainable token rows', () => {
    expect(lorax({}, { biases: ['model.layers.0.self_attn.q_proj'] }).reasons).toEqual([expect.stringContaining('bias tensors of model.layers.0.self_attn.q_proj would be dropped')]);
    expect(lorax({}, { tokenAdapters: ['model.embed_tokens'] }).reasons).toEqual([expect.stringContaining('does not load trainable token rows')]);
  });

  it('rejects LoRA on embed_tokens', () => {
    const embedding: LoraModule = { name: 'model.embed_tokens', kind: 'embedding', rank: 8, alpha: 16 };
    expect(lorax({}, { loraModules: [...modules(['q_proj']), embedding] }).reasons).toEqual(['LoRAX does not load LoRA on embedding layers (lora_embedding_A/B of model.embed_tokens)']);
  });

  it('rejects a module type missing from some layers', () => {
    const target = lorax({ layers_to_transform: [1] }, { loraModules: modules(['q_proj'], 8, 16, [1]) });
    expect(target.reasons).toEqual(['q_proj has LoRA weights in 1 of 2 layers; LoRAX loads a module type only when every layer has it, so it would skip q_proj']);
  });

  it('rejects per-module ranks from rank_pattern', () => {
    const target = lorax({ rank_pattern: { v_proj: 4 } }, { loraModules: [...modules(['q_proj']), ...modules(['v_proj'], 4)] });
    expect(target.supported).toBe(false);
    expect(target.reasons).toEqual([
      'LoRAX scales every module by lora_alpha and r from adapter_config.json (16 and 8), but rank_pattern or alpha_pattern gives model.layers.0.self_attn.v_proj rank 4, alpha 16, model.layers.1.self_attn.v_proj rank 4, alpha 16',
    ]);
  });

  it('rejects ranks that differ across the layers of one type', () => {
    const target = lorax({ r: 8, lora_alpha: 16 }, { loraModules: [...modules(['q_proj'], 8, 16, [0]), ...modules(['q_proj'], 4, 8, [1])] });
    expect(target.reasons).toEqual(['q_proj has ranks 4, 8 across layers; LoRAX stacks the layers of a module type into one tensor, so it loads them only when its rank padding happens to make the ranks equal']);
  });

  it('accepts a rank pattern whose alpha_pattern keeps every scale', () => {
    expect(lorax({ rank_pattern: { v_proj: 4 }, alpha_pattern: { v_proj: 8 } }, { loraModules: [...modules(['q_proj']), ...modules(['v_proj'], 4, 8)] }).supported).toBe(true);
  });

  it('notes ranks above its kernel limit without refusing them', () => {
    expect(lorax({ r: 256, lora_alpha: 512 }, { loraModules: modules(['q_proj'], 256, 512) })).toEqual({
      engine: 'LoRAX', supported: true, reasons: ["rank 256 exceeds 128, the largest rank of LoRAX's custom SGMV and BGMV kernels; LoRAX runs it on its fallback kernels"],
    });
  });
});
