import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkAdapter, type GateBaseModel } from '../../server/formats/adapter-gate';
import { parsePeftConfig, rankFor } from '../../server/formats/peft-config';
import { selectTargetModules } from '../../server/formats/peft-targets';
import type { SafetensorsHeader, TensorInfo } from '../../server/formats/safetensors';

// Two decoder layers with q, k and v projections, an embedding and an output layer.
const modules: GateBaseModel['modules'] = { 'model.embed_tokens': { kind: 'embedding', shape: [100, 32] }, lm_head: { kind: 'linear', shape: [100, 32] } };
for (const layer of [0, 1]) {
  modules[`model.layers.${layer}.self_attn.q_proj`] = { kind: 'linear', shape: [32, 32] };
  modules[`model.layers.${layer}.self_attn.k_proj`] = { kind: 'linear', shape: [16, 32] };
  modules[`model.layers.${layer}.self_attn.v_proj`] = { kind: 'linear', shape: [16, 32] };
}
const base: GateBaseModel = { id: 'toy-llama', modules, architecture: { model_type: 'llama', num_hidden_layers: 2, vocab_size: 100 }, parameterCount: 10_000 };

const config = (extra: Record<string, unknown> = {}) => parsePeftConfig(JSON.stringify({
  peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], base_model_name_or_path: 'toy-llama', ...extra,
}));

/** LoRA pairs of rank `rank` for the given module types in the given layers. */
function header(types: string[], layers = [0, 1], rank = 4): SafetensorsHeader {
  const tensors: TensorInfo[] = [];
  for (const layer of layers) {
    for (const type of types) {
      const name = `model.layers.${layer}.self_attn.${type}`;
      const [out, inFeatures] = modules[name]!.shape;
      tensors.push({ name: `base_model.model.${name}.lora_A.weight`, dtype: 'F32', shape: [rank, inFeatures], begin: 0, end: 0 });
      tensors.push({ name: `base_model.model.${name}.lora_B.weight`, dtype: 'F32', shape: [out, rank], begin: 0, end: 0 });
    }
  }
  return { headerLength: 0, tensors, metadata: {} };
}

const selected = (extra: Record<string, unknown>) => [...selectTargetModules(config(extra), modules, 100).selected!].sort();

describe('target module selection', () => {
  it('selects list entries by name suffix', () => {
    expect(selected({ target_modules: ['q_proj'] })).toEqual(['model.layers.0.self_attn.q_proj', 'model.layers.1.self_attn.q_proj']);
  });

  it('selects exact names', () => {
    expect(selected({ target_modules: ['model.layers.1.self_attn.k_proj'] })).toEqual(['model.layers.1.self_attn.k_proj']);
  });

  it('matches a string against the whole name', () => {
    expect(selected({ target_modules: '.*\\.1\\.self_attn\\.(q|k)_proj' })).toEqual(['model.layers.1.self_attn.k_proj', 'model.layers.1.self_attn.q_proj']);
    expect(selected({ target_modules: 'q_proj' })).toEqual([]);
  });

  it('expands all-linear without the output layer', () => {
    expect(selected({ target_modules: 'all-linear' })).toHaveLength(6);
    expect(selected({ target_modules: 'ALL-LINEAR' })).not.toContain('lm_head');
  });

  it('limits list matches to layers_to_transform', () => {
    expect(selected({ target_modules: ['q_proj'], layers_to_transform: [1] })).toEqual(['model.layers.1.self_attn.q_proj']);
    expect(selected({ target_modules: ['q_proj'], layers_to_transform: 0, layers_pattern: 'layers' })).toEqual(['model.layers.0.self_attn.q_proj']);
    expect(selected({ target_modules: ['q_proj'], layers_to_transform: 0, layers_pattern: 'blocks' })).toEqual([]);
  });

  it('leaves out exclude_modules and modules_to_save', () => {
    expect(selected({ target_modules: ['q_proj'], exclude_modules: ['model.layers.0.self_attn.q_proj'] })).toEqual(['model.layers.1.self_attn.q_proj']);
    expect(selected({ target_modules: ['q_proj'], exclude_modules: '.*\\.0\\..*' })).toEqual(['model.layers.1.self_attn.q_proj']);
    expect(selected({ target_modules: ['q_proj', 'lm_head'], modules_to_save: ['lm_head'] })).not.toContain('lm_head');
  });

  it('names list entries that match nothing', () => {
    expect(selectTargetModules(config({ target_modules: ['q_proj', 'c_attn'] }), modules, 100).unmatchedEntries).toEqual(['c_attn']);
  });

  it('gives up on a pattern JavaScript cannot compile', () => {
    const selection = selectTargetModules(config({ target_modules: '(?i)Q_PROJ' }), modules, 100);
    expect(selection.selected).toBeNull();
    expect(selection.notEvaluated).toMatch(/cannot compile/);
  });
});

describe('adapter gate', () => {
  it('accepts a complete adapter without warnings', () => {
    const result = checkAdapter(config(), header(['q_proj', 'v_proj']), base);
    expect(result.errors).toEqual([]);
    expect(result.warnings).toEqual([]);
    expect(result.summary).toMatchObject({ rank: 4, ranks: [4], loraModules: 4, checkedBaseModelId: 'toy-llama', baseModelNameOrPath: 'toy-llama' });
  });

  it('warns about selected modules without tensors', () => {
    const result = checkAdapter(config(), header(['q_proj']), base);
    expect(result.errors).toEqual([]);
    expect(result.warnings).toEqual(['target_modules selects 2 modules with no LoRA tensors in adapter_model.safetensors (model.layers.0.self_attn.v_proj, model.layers.1.self_attn.v_proj); they leave the base model unchanged, so check that the file is complete']);
  });

  it('flags tensors target_modules skips', () => {
    const result = checkAdapter(config({ target_modules: ['q_proj'] }), header(['q_proj', 'k_proj']), base);
    expect(result.errors).toEqual([]);
    expect(result.warnings).toEqual([expect.stringContaining('LoRA tensors for 2 modules that target_modules does not select (model.layers.0.self_attn.k_proj, model.layers.1.self_attn.k_proj)')]);
    const peft = (result.summary.serving as { engine: string; supported: boolean; reasons: string[] }[])[0]!;
    expect(peft.supported).toBe(false);
    expect(peft.reasons).toEqual([expect.stringContaining('PEFT ignores the LoRA tensors of 2 modules')]);
  });

  it('accepts bare module name string', () => {
    const result = checkAdapter(config({ target_modules: 'q_proj' }), header(['q_proj']), base);
    expect(result.errors).toEqual([]);
    expect(result.warnings).toEqual([expect.stringContaining('target_modules "q_proj" selects no module of base model toy-llama (a string is a regular expression that must match the whole module name; write ["q_proj"]')]);
    const peft = (result.summary.serving as { supported: boolean; reasons: string[] }[])[0]!;
    expect(peft.supported).toBe(false);
    expect(peft.reasons[0]).toMatch(/Target modules \.\.\. not found in the base model/);
  });

  it('accepts regex string without warnings', () => {
    const result = checkAdapter(config({ target_modules: '.*\\.(q_proj|v_proj)' }), header(['q_proj', 'v_proj']), base);
    expect(result.errors).toEqual([]);
    expect(result.warnings).toEqual([]);
  });

  it('records every rank of a rank pattern', () => {
    const tensors = header(['q_proj']).tensors.concat(header(['v_proj'], [0, 1], 2).tensors);
    const result = checkAdapter(config({ rank_pattern: { v_proj: 2 } }), { headerLength: 0, tensors, metadata: {} }, base);
    expect(result.errors).toEqual([]);
    expect(result.summary.ranks).toEqual([2, 4]);
    expect(result.summary.rankPattern).toEqual({ v_proj: 2 });
  });

  it('warns when base_model_name_or_path is missing', () => {
    const parsed = config();
    parsed.baseModelNameOrPath = null;
    expect(checkAdapter(parsed, header(['q_proj', 'v_proj']), base).warnings).toEqual([expect.stringContaining('has no base_model_name_or_path')]);
  });

  it('warns about another base model', () => {
    const result = checkAdapter(config({ base_model_name_or_path: 'meta-llama/Llama-3-8B' }), header(['q_proj', 'v_proj']), base);
    expect(result.warnings).toEqual([expect.stringContaining('names base model "meta-llama/Llama-3-8B", but the adapter was checked against base model toy-llama')]);
    expect(result.summary).toMatchObject({ baseModelNameOrPath: 'meta-llama/Llama-3-8B', checkedBaseModelId: 'toy-llama' });
  });

  it('matches hub id by last part', () => {
    expect(checkAdapter(config({ base_model_name_or_path: 'Someone/TOY-llama' }), header(['q_proj', 'v_proj']), base).warnings).toEqual([]);
    expect(checkAdapter(config({ base_model_name_or_path: '/models/toy-llama/' }), header(['q_proj', 'v_proj']), base).warnings).toEqual([]);
  });

  it('warns about unsaved modules_to_save', () => {
    expect(checkAdapter(config({ modules_to_save: ['lm_head'] }), header(['q_proj', 'v_proj']), base).warnings)
      .toEqual(['modules_to_save names lm_head but adapter_model.safetensors has no weight for it, so the base weights stay in place']);
  });

  it('returns errors without a summary', () => {
    const result = checkAdapter(config({ r: 8 }), header(['q_proj', 'v_proj']), base);
    expect(result.errors).toEqual([expect.stringContaining('sets r=8 but every lora_A tensor has rank 4')]);
    expect(result.summary).toEqual({});
  });
});

// The worker's own PEFT, on a two-layer Llama built in memory, is the reference for the
// target selection and rank_pattern rules above.
const PYTHON = '.venv/bin/python';
const PEFT_REFERENCE = `
import json, sys, torch
from transformers import LlamaConfig, LlamaForCausalLM
from peft import LoraConfig
from peft.tuners.tuners_utils import check_target_module_exists, _maybe_include_all_linear_layers
from peft.utils.other import get_pattern_key
config = LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
model = LlamaForCausalLM(config)
names = [n for n, m in model.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Embedding))]
request = json.load(sys.stdin)
selections = []
for case in request["targets"]:
    lora = _maybe_include_all_linear_layers(LoraConfig(r=4, **case), model)
    selections.append(sorted(n for n in names if check_target_module_exists(lora, n)))
pattern = request["rank_pattern"]
ranks = [pattern.get(get_pattern_key(pattern.keys(), n), 4) for n in names]
modules = {n: {"kind": "embedding" if isinstance(model.get_submodule(n), torch.nn.Embedding) else "linear", "shape": list(model.get_submodule(n).weight.shape)} for n in names}
print(json.dumps({"names": names, "modules": modules, "selections": selections, "ranks": ranks}))
`;

describe('agreement with PEFT', () => {
  const targetCases: Record<string, unknown>[] = [
    { target_modules: ['q_proj', 'v_proj'] },
    { target_modules: ['model.layers.1.self_attn.k_proj', 'o_proj'] },
    { target_modules: '.*\\.1\\.self_attn\\.(q|k)_proj' },
    { target_modules: 'q_proj' },
    { target_modules: '.*(q_proj|embed_tokens)' },
    { target_modules: ['q_proj'], layers_to_transform: [1] },
    { target_modules: ['q_proj', 'down_proj'], layers_to_transform: 0, layers_pattern: 'layers' },
    { target_modules: ['q_proj'], layers_to_transform: 0, layers_pattern: ['blocks', 'layers'] },
    { target_modules: ['q_proj'], layers_to_transform: 0, layers_pattern: 'blocks' },
    { target_modules: ['q_proj', 'v_proj'], exclude_modules: ['model.layers.0.self_attn.q_proj'] },
    { target_modules: ['q_proj', 'v_proj'], exclude_modules: '.*\\.0\\..*' },
    { target_modules: ['q_proj', 'lm_head'], modules_to_save: ['lm_head'] },
    { target_modules: ['q_proj'], modules_to_save: ['self_attn'] },
    { target_modules: ['proj'] },
    { target_modules: ['self_attn.q_proj', 'mlp.up_proj'] },
    { target_modules: ['embed_tokens', 'q_proj'] },
    { target_modules: 'all-linear' },
  ];
  const rankPattern = { 'q_proj|v_proj': 2, 'layers\\.1\\.self_attn\\.k_proj': 3, 'mlp\\..*': 5, proj: 7 };

  // The unit project can run without the worker's environment; the full suite always has it.
  it.skipIf(!fs.existsSync(PYTHON))('selects the modules and ranks PEFT does', () => {
    const result = spawnSync(PYTHON, ['-c', PEFT_REFERENCE], {
      input: JSON.stringify({ targets: targetCases, rank_pattern: rankPattern }), encoding: 'utf8', timeout: 120_000, env: { ...process.env, HF_HUB_OFFLINE: '1' },
    });
    expect(result.status, result.stderr).toBe(0);
    const reference = JSON.parse(result.stdout) as { names: string[]; modules: GateBaseModel['modules']; selections: string[][]; ranks: number[] };

    targetCases.forEach((targetCase, index) => {
      const selection = selectTargetModules(config(targetCase), reference.modules, 100);
      expect([targetCase, [...selection.selected!].sort()]).toEqual([targetCase, reference.selections[index]]);
    });
    const parsed = config({ rank_pattern: rankPattern });
    expect(reference.names.map((name) => rankFor(parsed, name))).toEqual(reference.ranks);
  }, 120_000);
});
