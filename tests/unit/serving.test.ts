import { describe, expect, it } from 'vitest';
import { parsePeftConfig } from '../../server/formats/peft-config';
import { servingTargets } from '../../server/formats/serving';

const vllm = (extra: Record<string, unknown>, ranks: number[] = []) => {
  const config = parsePeftConfig(JSON.stringify({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj'], ...extra }));
  return servingTargets(config, ranks).find((t) => t.engine === 'vLLM')!;
};

describe('serving targets', () => {
  it('accepts a rank-8 adapter on vLLM defaults', () => {
    expect(vllm({})).toEqual({ engine: 'vLLM', supported: true, reasons: [] });
  });

  it('asks for a larger max-lora-rank above 16', () => {
    expect(vllm({ r: 48 })).toEqual({ engine: 'vLLM', supported: true, reasons: ["rank 48 exceeds vLLM's default max_lora_rank of 16; start vLLM with --max-lora-rank 64"] });
  });

  it('uses the largest rank of a rank pattern', () => {
    expect(vllm({}, [8, 32]).reasons).toEqual(["rank 32 exceeds vLLM's default max_lora_rank of 16; start vLLM with --max-lora-rank 32"]);
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
