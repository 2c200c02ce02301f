import { describe, expect, it } from 'vitest';
import { checkLoraTensors } from '../../server/formats/lora-tensors';
import { parsePeftConfig, rankFor } from '../../server/formats/peft-config';
import type { TensorInfo } from '../../server/formats/safetensors';

const modules = {
  'model.layers.0.self_attn.q_proj': { kind: 'linear' as const, shape: [32, 32] as [number, number] },
  'model.layers.0.self_attn.k_proj': { kind: 'linear' as const, shape: [16, 32] as [number, number] },
  'model.embed_tokens': { kind: 'embedding' as const, shape: [100, 32] as [number, number] },
};

function tensor(name: string, shape: number[]): TensorInfo {
  return { name, dtype: 'F32', shape, begin: 0, end: 0 };
}

const config = (extra: Record<string, unknown> = {}) => parsePeftConfig(JSON.stringify({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'k_proj'], ...extra }));

describe('PEFT config parser', () => {
  it('keeps unknown keys as warnings', () => {
    const parsed = config({ some_future_option: true });
    expect(parsed.warnings).toEqual([expect.stringContaining('unknown key "some_future_option"')]);
  });

  it('accepts target_modules as a regular expression string', () => {
    expect(config({ target_modules: '.*proj' }).targetModules).toBe('.*proj');
  });

  it('rejects a non-LoRA adapter', () => {
    expect(() => parsePeftConfig(JSON.stringify({ peft_type: 'IA3' }))).toThrow(/only LoRA adapters/);
  });

  it('rejects a non-integer rank naming the value', () => {
    expect(() => config({ r: 2.5 })).toThrow('r must be a positive integer, got 2.5');
  });

  it('applies rank_pattern to matching modules', () => {
    const parsed = config({ rank_pattern: { k_proj: 2 } });
    expect(rankFor(parsed, 'model.layers.0.self_attn.k_proj')).toBe(2);
    expect(rankFor(parsed, 'model.layers.0.self_attn.q_proj')).toBe(4);
  });
});

describe('LoRA tensor check', () => {
  it('accepts pairs with the right shapes', () => {
    const report = checkLoraTensors([
      tensor('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', [4, 32]),
      tensor('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight', [32, 4]),
    ], config(), modules);
    expect(report.errors).toEqual([]);
    expect(report.trainableParameters).toBe(256);
  });

  it('names the tensor, its shape and the expected shape on a mismatch', () => {
    const report = checkLoraTensors([
      tensor('base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight', [4, 32]),
      tensor('base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight', [32, 4]),
    ], config(), modules);
    expect(report.errors).toEqual(['tensor base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight: shape [32, 4], expected [16, 4]']);
  });

  it('names a config rank that no tensor has', () => {
    const report = checkLoraTensors([
      tensor('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', [8, 32]),
      tensor('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight', [32, 8]),
    ], config(), modules);
    expect(report.errors).toEqual(['adapter_config.json says r=4 but every lora_A tensor has rank 8; set "r": 8 or re-save the adapter']);
  });

  it('reports a lora_A without its lora_B', () => {
    const report = checkLoraTensors([tensor('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', [4, 32])], config(), modules);
    expect(report.errors[0]).toMatch(/has no matching lora_B/);
  });

  it('reports a module the base model lacks', () => {
    const report = checkLoraTensors([
      tensor('base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight', [4, 32]),
      tensor('base_model.model.model.layers.9.self_attn.q_proj.lora_B.weight', [32, 4]),
    ], config(), modules);
    expect(report.errors[0]).toMatch(/has no linear module model.layers.9.self_attn.q_proj/);
  });

  it('reports a resized vocabulary in a saved embedding', () => {
    const report = checkLoraTensors([
      tensor('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', [4, 32]),
      tensor('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight', [32, 4]),
      tensor('base_model.model.model.embed_tokens.weight', [102, 32]),
    ], config(), modules);
    expect(report.errors).toEqual([expect.stringContaining('was the vocabulary resized? the base vocabulary has 100 tokens')]);
  });
});
