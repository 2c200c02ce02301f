import { describe, expect, it } from 'vitest';
import { checkLoraTensors, type BaseModelShapes } from '../../server/formats/lora-tensors';
import { alphaFor, fullMatchRegex, parsePeftConfig, rankFor } from '../../server/formats/peft-config';
import type { TensorInfo } from '../../server/formats/safetensors';

const base: BaseModelShapes = {
  id: 'toy',
  vocabSize: 100,
  modules: {
    'model.layers.0.self_attn.q_proj': { kind: 'linear', shape: [32, 32] },
    'model.layers.0.self_attn.k_proj': { kind: 'linear', shape: [16, 32] },
    'model.embed_tokens': { kind: 'embedding', shape: [100, 32] },
    lm_head: { kind: 'linear', shape: [100, 32] },
  },
};

function tensor(name: string, shape: number[]): TensorInfo {
  return { name, dtype: 'F32', shape, begin: 0, end: 0 };
}

const config = (extra: Record<string, unknown> = {}) => parsePeftConfig(JSON.stringify({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'k_proj'], ...extra }));

const Q = 'base_model.model.model.layers.0.self_attn.q_proj';
const qPair = [tensor(`${Q}.lora_A.weight`, [4, 32]), tensor(`${Q}.lora_B.weight`, [32, 4])];

describe('PEFT config parser', () => {
  it('keeps unknown keys as warnings', () => {
    const parsed = config({ some_future_option: true });
    expect(parsed.warnings).toEqual([expect.stringContaining('unknown key "some_future_option"')]);
    expect(parsed.raw.some_future_option).toBe(true);
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

  it('rejects a fractional rank_pattern value', () => {
    expect(() => config({ rank_pattern: { k_proj: 1.5 } })).toThrow('rank_pattern.k_proj must be a positive integer, got 1.5');
  });

  it('rejects an unknown bias mode', () => {
    expect(() => config({ bias: 'some' })).toThrow('bias must be one of "none", "all", "lora_only", got "some"');
  });

  it('reads layers_to_transform as a number or a list', () => {
    expect(config({ layers_to_transform: 1 }).layersToTransform).toEqual([1]);
    expect(config({ layers_to_transform: [0, 2] }).layersToTransform).toEqual([0, 2]);
    expect(config({ layers_to_transform: [] }).layersToTransform).toBeNull();
    expect(config({ layers_pattern: 'layers' }).layersPattern).toEqual(['layers']);
  });

  it('reads trainable_token_indices as a list or a map', () => {
    expect(config({ trainable_token_indices: [1, 2] }).trainableTokenIndices).toEqual({ embed_tokens: [1, 2] });
    expect(config({ trainable_token_indices: { lm_head: [3] } }).trainableTokenIndices).toEqual({ lm_head: [3] });
    expect(() => config({ trainable_token_indices: ['a'] })).toThrow(/trainable_token_indices must be/);
  });

  it('treats an empty base_model_name_or_path as missing', () => {
    expect(config({ base_model_name_or_path: '' }).baseModelNameOrPath).toBeNull();
  });

  it('applies rank_pattern to matching modules', () => {
    const parsed = config({ rank_pattern: { k_proj: 2 } });
    expect(rankFor(parsed, 'model.layers.0.self_attn.k_proj')).toBe(2);
    expect(rankFor(parsed, 'model.layers.0.self_attn.q_proj')).toBe(4);
  });

  it('matches rank_pattern keys as whole name parts like PEFT', () => {
    const parsed = config({ rank_pattern: { 'q_proj|v_proj': 2, 'layers\\.1\\.self_attn\\.k_proj': 3 } });
    expect(rankFor(parsed, 'model.layers.0.self_attn.v_proj')).toBe(2);
    expect(rankFor(parsed, 'model.layers.1.self_attn.k_proj')).toBe(3);
    expect(rankFor(parsed, 'model.layers.0.self_attn.k_proj')).toBe(4);
    // "proj" is not a whole name part of "q_proj", so it does not match.
    expect(rankFor(config({ rank_pattern: { proj: 2 } }), 'model.layers.0.self_attn.q_proj')).toBe(4);
  });

  it('applies alpha_pattern to matching modules', () => {
    const parsed = config({ alpha_pattern: { q_proj: 32 } });
    expect(alphaFor(parsed, 'model.layers.0.self_attn.q_proj')).toBe(32);
    expect(alphaFor(parsed, 'model.layers.0.self_attn.k_proj')).toBe(8);
  });
});

describe('Python regular expressions', () => {
  it('matches the whole string', () => {
    expect(fullMatchRegex('q_proj')!.test('model.q_proj')).toBe(false);
    expect(fullMatchRegex('.*q_proj')!.test('model.q_proj')).toBe(true);
  });

  it('translates named groups and anchors', () => {
    const regex = fullMatchRegex('\\A(?P<part>a+)b(?P=part)\\Z')!;
    expect(regex.test('aabaa')).toBe(true);
    expect(regex.test('aaba')).toBe(false);
  });

  it('keeps an escaped backslash before A', () => {
    expect(fullMatchRegex('x\\\\A')!.test('x\\A')).toBe(true);
  });

  it('returns null for syntax JavaScript lacks', () => {
    expect(fullMatchRegex('(?i)q_proj')).toBeNull();
  });
});

describe('LoRA tensor check', () => {
  it('accepts pairs with the right shapes', () => {
    const report = checkLoraTensors(qPair, config(), base);
    expect(report.errors).toEqual([]);
    expect(report.modules).toEqual([{ name: 'model.layers.0.self_attn.q_proj', kind: 'linear', rank: 4, alpha: 8 }]);
    expect(report.trainableParameters).toBe(256);
  });

  it('names the tensor, its shape and the expected shape on a mismatch', () => {
    const K = 'base_model.model.model.layers.0.self_attn.k_proj';
    const report = checkLoraTensors([tensor(`${K}.lora_A.weight`, [4, 32]), tensor(`${K}.lora_B.weight`, [32, 4])], config(), base);
    expect(report.errors).toEqual([`tensor ${K}.lora_B.weight: shape [32, 4], expected [16, 4]`]);
  });

  it('names a config rank that no tensor has', () => {
    const report = checkLoraTensors([tensor(`${Q}.lora_A.weight`, [8, 32]), tensor(`${Q}.lora_B.weight`, [32, 8])], config(), base);
    expect(report.errors).toEqual(['adapter_config.json sets r=4 but every lora_A tensor has rank 8; set "r": 8 or save the adapter again']);
  });

  it('reports a lora_A without its lora_B', () => {
    const report = checkLoraTensors([tensor(`${Q}.lora_A.weight`, [4, 32])], config(), base);
    expect(report.errors).toEqual([`tensor ${Q}.lora_A.weight has no matching lora_B: LoRA weights come in lora_A/lora_B pairs`]);
  });

  it('reports a module the base model lacks', () => {
    const report = checkLoraTensors([
      tensor('base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight', [4, 32]),
      tensor('base_model.model.model.layers.9.self_attn.q_proj.lora_B.weight', [32, 4]),
    ], config(), base);
    expect(report.errors[0]).toMatch(/has no linear module model.layers.9.self_attn.q_proj/);
  });

  it('reports a file without LoRA tensors', () => {
    const report = checkLoraTensors([], config(), base);
    expect(report.errors).toEqual(['adapter_model.safetensors contains no lora_A/lora_B tensors']);
  });

  it('reports a resized vocabulary in a saved embedding with both sizes', () => {
    const report = checkLoraTensors([...qPair, tensor('base_model.model.model.embed_tokens.weight', [102, 32])], config(), base);
    expect(report.errors).toHaveLength(1);
    expect(report.errors[0]).toMatch(/^tensor base_model\.model\.model\.embed_tokens\.weight has shape \[102, 32\], a vocabulary of 102 tokens, but base model toy has a vocabulary of 100 tokens: the vocabulary was resized/);
  });

  it('reports a resized vocabulary in a LoRA on lm_head', () => {
    const report = checkLoraTensors([...qPair, tensor('base_model.model.lm_head.lora_A.weight', [4, 32]), tensor('base_model.model.lm_head.lora_B.weight', [103, 4])], config(), base);
    expect(report.errors).toEqual([expect.stringMatching(/lm_head\.lora_B\.weight has shape \[103, 4\], a vocabulary of 103 tokens, but base model toy has a vocabulary of 100 tokens/)]);
  });

  it('reports a resized vocabulary in an embedding LoRA', () => {
    const E = 'base_model.model.model.embed_tokens';
    const report = checkLoraTensors([...qPair, tensor(`${E}.lora_embedding_A`, [4, 101]), tensor(`${E}.lora_embedding_B`, [32, 4])], config(), base);
    expect(report.errors).toEqual([expect.stringContaining('a vocabulary of 101 tokens, but base model toy has a vocabulary of 100 tokens')]);
  });

  it('accepts an embedding LoRA with its saved base layer', () => {
    const E = 'base_model.model.model.embed_tokens';
    const report = checkLoraTensors([
      ...qPair, tensor(`${E}.base_layer.weight`, [100, 32]), tensor(`${E}.lora_embedding_A`, [4, 100]), tensor(`${E}.lora_embedding_B`, [32, 4]),
    ], config(), base);
    expect(report.errors).toEqual([]);
    expect(report.modules.map((m) => [m.name, m.kind])).toEqual([['model.layers.0.self_attn.q_proj', 'linear'], ['model.embed_tokens', 'embedding']]);
    expect(report.fullWeights).toEqual(['model.embed_tokens']);
  });

  it('rejects lora_A/lora_B on an embedding', () => {
    const E = 'base_model.model.model.embed_tokens';
    const report = checkLoraTensors([...qPair, tensor(`${E}.lora_A.weight`, [4, 100]), tensor(`${E}.lora_B.weight`, [32, 4])], config(), base);
    expect(report.errors).toEqual([expect.stringContaining('module model.embed_tokens is an embedding, for which PEFT stores lora_embedding_A')]);
  });

  it('accepts modules_to_save weights of the base shape', () => {
    const report = checkLoraTensors([...qPair, tensor('base_model.model.lm_head.modules_to_save.default.weight', [100, 32])], config({ modules_to_save: ['lm_head'] }), base);
    expect(report.errors).toEqual([]);
    expect(report.fullWeights).toEqual(['lm_head']);
  });

  it('accepts DoRA magnitudes of the output size', () => {
    const report = checkLoraTensors([...qPair, tensor(`${Q}.lora_magnitude_vector`, [32])], config({ use_dora: true }), base);
    expect(report.errors).toEqual([]);
    expect(report.modulesWithTensors).toEqual(['model.layers.0.self_attn.q_proj']);
  });

  it('rejects a DoRA magnitude of the wrong size', () => {
    const report = checkLoraTensors([...qPair, tensor(`${Q}.lora_magnitude_vector.weight`, [16])], config({ use_dora: true }), base);
    expect(report.errors).toContain(`tensor ${Q}.lora_magnitude_vector.weight: shape [16], expected [32]`);
  });

  it('rejects DoRA magnitudes without use_dora', () => {
    const report = checkLoraTensors([...qPair, tensor(`${Q}.lora_magnitude_vector`, [32])], config(), base);
    expect(report.errors).toEqual([expect.stringContaining('does not set "use_dora": true')]);
  });

  it('rejects use_dora without magnitudes', () => {
    const report = checkLoraTensors(qPair, config({ use_dora: true }), base);
    expect(report.errors).toEqual([expect.stringContaining('1 LoRA modules have no lora_magnitude_vector (model.layers.0.self_attn.q_proj)')]);
  });

  it('accepts a LoRA bias only with lora_bias', () => {
    const bias = tensor(`${Q}.lora_B.bias`, [32]);
    expect(checkLoraTensors([...qPair, bias], config({ lora_bias: true }), base).biases).toEqual(['model.layers.0.self_attn.q_proj']);
    expect(checkLoraTensors([...qPair, bias], config(), base).errors).toEqual([expect.stringContaining('set "lora_bias": true')]);
  });

  it('checks trainable token rows against the vocabulary', () => {
    const rows = tensor('base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta', [2, 32]);
    expect(checkLoraTensors([...qPair, rows], config({ trainable_token_indices: [5, 6] }), base).tokenAdapters).toEqual(['model.embed_tokens']);
    const beyond = checkLoraTensors([...qPair, rows], config({ trainable_token_indices: [5, 100] }), base);
    expect(beyond.errors).toEqual([expect.stringContaining('includes token ids 100 but base model toy has a vocabulary of 100 tokens: the vocabulary was resized')]);
  });

  it('names a tensor PEFT never writes', () => {
    const report = checkLoraTensors([...qPair, tensor(`${Q}.lora_C`, [4])], config(), base);
    expect(report.errors).toEqual([`tensor ${Q}.lora_C is not a LoRA, DoRA or saved-module tensor that PEFT writes`]);
  });
});
