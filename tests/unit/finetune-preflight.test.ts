import { describe, expect, it } from 'vitest';
import type { ModuleShape } from '@/drizzle/schema';
import { hyperparameters } from '../../server/contracts/runner';
import { preflightFinetune, type PreflightBaseModel } from '../../server/services/finetune-preflight';

// The module table of SmolLM2-135M as `worker prepare-base` writes it into manifest.json:
// [out_features, in_features] for linear layers. Two decoder layers are enough here.
function smollm2Modules(layers: number): Record<string, ModuleShape> {
  const modules: Record<string, ModuleShape> = { 'model.embed_tokens': { kind: 'embedding', shape: [49_152, 576] } };
  for (let layer = 0; layer < layers; layer++) {
    const prefix = `model.layers.${layer}`;
    modules[`${prefix}.self_attn.q_proj`] = { kind: 'linear', shape: [576, 576] };
    modules[`${prefix}.self_attn.k_proj`] = { kind: 'linear', shape: [192, 576] };
    modules[`${prefix}.self_attn.v_proj`] = { kind: 'linear', shape: [192, 576] };
    modules[`${prefix}.self_attn.o_proj`] = { kind: 'linear', shape: [576, 576] };
    modules[`${prefix}.mlp.gate_proj`] = { kind: 'linear', shape: [1536, 576] };
    modules[`${prefix}.mlp.up_proj`] = { kind: 'linear', shape: [1536, 576] };
    modules[`${prefix}.mlp.down_proj`] = { kind: 'linear', shape: [576, 1536] };
  }
  modules.lm_head = { kind: 'linear', shape: [49_152, 576] };
  return modules;
}

const base: PreflightBaseModel = {
  id: 'smollm2-135m-instruct',
  architecture: { model_type: 'llama', hidden_size: 576, vocab_size: 49_152, max_position_embeddings: 8192 },
  modules: smollm2Modules(2),
};
const options = (overrides: Record<string, unknown> = {}) =>
  hyperparameters.parse({ rank: 16, alpha: 32, learningRate: 2e-4, epochs: 1, batchSize: 4, maxSeqLength: 512, ...overrides });

describe('fine-tune preflight', () => {
  it('accepts the defaults and every preset rank up to 128', () => {
    for (const rank of [8, 16, 32, 64, 128]) {
      expect(preflightFinetune(base, options({ rank, alpha: 2 * rank }), 8192)).toEqual([]);
    }
  });

  it('rejects a rank above the smallest targeted dimension, naming module and limit', () => {
    const [problem, ...rest] = preflightFinetune(base, options({ rank: 256, alpha: 512 }), 8192);
    expect(rest).toEqual([]);
    expect(problem).toContain('rank 256');
    expect(problem).toContain('model.layers.0.self_attn.k_proj (192×576)');
    expect(problem).toContain('set rank to at most 192');
    expect(problem).toContain('k_proj, v_proj');
  });

  it('takes the larger limit when the small modules are not targeted', () => {
    expect(preflightFinetune(base, options({ rank: 256, alpha: 512, targetModules: ['q_proj', 'gate_proj'] }), 8192)).toEqual([]);
  });

  it('checks adalora.initialRank instead of rank', () => {
    const adalora = { initialRank: 200, targetRank: 8, tinit: 10, tfinal: 10, deltaT: 5 };
    const [problem] = preflightFinetune(base, options({ adalora }), 8192);
    expect(problem).toContain('adalora.initialRank 200');
    expect(problem).toContain('set adalora.initialRank to at most 192');
  });

  it('rejects maxSeqLength above the base model context', () => {
    const [problem, ...rest] = preflightFinetune(base, options({ maxSeqLength: 16_384 }), 8192);
    expect(rest).toEqual([]);
    expect(problem).toContain('maxSeqLength 16384');
    expect(problem).toContain('8192 tokens');
    expect(problem).toContain('set maxSeqLength to at most 8192');
  });

  it('skips the context check when the context length is unknown', () => {
    expect(preflightFinetune(base, options({ maxSeqLength: 16_384 }), null)).toEqual([]);
  });

  it('rejects a target module the base model lacks, listing the names it has', () => {
    const [problem, ...rest] = preflightFinetune(base, options({ targetModules: ['q_proj', 'query_key_value'] }), 8192);
    expect(rest).toEqual([]);
    expect(problem).toContain('"query_key_value" matches no module of base model smollm2-135m-instruct');
    expect(problem).toContain('q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj');
  });

  it('rejects lm_head and the embedding as targets', () => {
    const problems = preflightFinetune(base, options({ targetModules: ['lm_head', 'embed_tokens'] }), 8192);
    expect(problems).toHaveLength(2);
    expect(problems[0]).toContain('output layer lm_head');
    expect(problems[1]).toContain('embedding model.embed_tokens');
  });

  it('reports every problem at once', () => {
    const problems = preflightFinetune(base, options({ rank: 300, alpha: 600, maxSeqLength: 9000, targetModules: ['k_proj', 'w_pack'] }), 8192);
    expect(problems).toHaveLength(3);
  });
});

describe('hyperparameters contract', () => {
  it('fills defaults for the newer options', () => {
    const parsed = options();
    expect(parsed.targetModules).toBe('all-linear');
    expect(parsed.lrScheduler).toBe('linear');
    expect(parsed.packing).toBe(false);
    expect(parsed.quantization).toBe('none');
    expect(parsed.precision).toBe('auto');
    expect(parsed.adalora).toBeNull();
  });

  it('rejects AdaLoRA with DoRA and early stopping without validation', () => {
    const adalora = { initialRank: 12, targetRank: 8, tinit: 10, tfinal: 10, deltaT: 5 };
    expect(() => options({ adalora, useDora: true })).toThrow(/AdaLoRA has no DoRA/);
    expect(() => options({ earlyStoppingPatience: 2 })).toThrow(/set validationFraction above 0 and evalEverySteps/);
    expect(() => options({ adalora: { ...adalora, targetRank: 16 } })).toThrow(/targetRank exceeds adalora.initialRank/);
    expect(options({ earlyStoppingPatience: 2, validationFraction: 0.1, evalEverySteps: 10 }).earlyStoppingPatience).toBe(2);
  });
});
