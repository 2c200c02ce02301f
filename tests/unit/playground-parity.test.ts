import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoraInputsError, loraInputsFromAdapter } from '@/server/formats/lora-inputs';
import { parsePeftConfig } from '@/server/formats/peft-config';
import { adapterFeeds } from '@/server/playground/adapters';
import { baseGraph, type BaseGraph } from '@/server/playground/graph';
import { Generation } from '@/server/playground/generate';

const TINY_MODEL_DIR = path.resolve(process.env.TINY_MODEL_DIR ?? '.test-data/tiny-llama');
const MAX_RANK = 8;
// Both sides compute in float32 with different kernels (PyTorch and onnxruntime) over 2 layers.
// The tiny random model's logits are of order 1, so 1e-4 still catches a wrong scale or row.
const TOLERANCE = 1e-4;

/** Writes a safetensors file of zero-filled F32 tensors with the given shapes. */
function safetensorsFile(shapes: Record<string, number[]>): Uint8Array {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, shape] of Object.entries(shapes)) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 4;
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, Buffer.alloc(offset)]);
}

function python(code: string, args: string[]): string {
  const result = spawnSync(path.resolve('.venv/bin/python'), ['-c', code, ...args], {
    cwd: path.resolve('gpu-runner'), encoding: 'utf8', timeout: 120_000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1' },
  });
  if (result.status !== 0) throw new Error(`python failed (${result.status}): ${result.stderr}`);
  return result.stdout;
}

// Saves a PEFT adapter with random nonzero factors, then prints the logits of the merged model
// (merge_and_unload) at the last two positions of the tokens in argv[4], as JSON. rank_pattern gives v_proj rank 2, so
// the adapter has two ranks, both below MAX_RANK.
const MAKE_ADAPTER_AND_REFERENCE = `
import json, sys, torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM
model_dir, out, rslora, tokens = sys.argv[1], sys.argv[2], sys.argv[3] == "1", json.loads(sys.argv[4])
torch.manual_seed(7)
base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
config = LoraConfig(r=4, lora_alpha=12, target_modules=["q_proj", "v_proj", "o_proj", "up_proj", "down_proj"], rank_pattern={"v_proj": 2},
                    init_lora_weights=False, use_rslora=rslora, lora_dropout=0.0)
model = get_peft_model(base, config)
with torch.no_grad():
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            parameter.normal_(0, 0.5)
model.save_pretrained(out)
merged = model.merge_and_unload().eval()
with torch.no_grad():
    logits = merged(torch.tensor([tokens])).logits[0, -2:]
print(json.dumps(logits.tolist()))
`;

describe('playground shared-base graph', () => {
  let root: string;
  let graph: BaseGraph;
  const tokens = [1, 504, 2210, 314, 260, 4312, 30, 12, 99];

  beforeAll(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'playground-parity-'));
    const exported = spawnSync(path.resolve('.venv/bin/python'), ['-m', 'worker', 'export-onnx', '--model', TINY_MODEL_DIR, '--out', path.join(root, 'graphs', 'tiny'), '--lora-inputs', '--no-merged', '--max-rank', String(MAX_RANK)], {
      cwd: path.resolve('gpu-runner'), encoding: 'utf8', timeout: 120_000,
    });
    expect(exported.status, exported.stderr).toBe(0);
    graph = await baseGraph('tiny', path.join(root, 'graphs', 'tiny'));
  }, 180_000);

  afterAll(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  const results = new Map<boolean, Promise<{ reference: number[][]; prefillRow: number[]; cached: number[] }>>();
  function compare(rslora: boolean) {
    if (!results.has(rslora)) results.set(rslora, runAdapter(rslora));
    return results.get(rslora)!;
  }

  async function runAdapter(rslora: boolean) {
    const adapterDir = path.join(root, `adapter-${rslora ? 'rslora' : 'lora'}`);
    const reference = JSON.parse(python(MAKE_ADAPTER_AND_REFERENCE, [TINY_MODEL_DIR, adapterDir, rslora ? '1' : '0', JSON.stringify(tokens)])) as number[][];
    const feeds = await adapterFeeds(graph, {
      configSha256: `config-${rslora}`, weightsSha256: `weights-${rslora}`,
      readConfig: () => fs.readFile(path.join(adapterDir, 'adapter_config.json')),
      readWeights: () => fs.readFile(path.join(adapterDir, 'adapter_model.safetensors')),
    }, 64 * 1024 * 1024);

    // The prompt minus its last token goes in as a prefill, the last token through the cache.
    const generation = new Generation(graph, feeds, [], { temperature: 0, maxTokens: 1, seed: 1 });
    const prefill = await generation.logits(tokens.slice(0, -1));
    const cached = Array.from(await generation.logits(tokens.slice(-1)));
    const prefillRow = Array.from(prefill);
    return { reference, prefillRow, cached };
  }

  function maxDifference(a: number[], b: number[]): number {
    expect(a.length).toBe(b.length);
    return a.reduce((max, value, i) => Math.max(max, Math.abs(value - b[i]!)), 0);
  }

  it('matches merged PyTorch logits for an adapter', async () => {
    const { reference, prefillRow, cached } = await compare(false);
    expect(maxDifference(prefillRow, reference[0]!)).toBeLessThan(TOLERANCE);
    expect(maxDifference(cached, reference[1]!)).toBeLessThan(TOLERANCE);
  }, 180_000);

  it('matches merged PyTorch logits with rsLoRA scaling', async () => {
    const { reference, cached } = await compare(true);
    expect(maxDifference(cached, reference[1]!)).toBeLessThan(TOLERANCE);
  }, 180_000);

  it('differs from the base model with the adapter applied', async () => {
    const { cached } = await compare(false);
    const base = new Generation(graph, graph.zeroLora, [], { temperature: 0, maxTokens: 1, seed: 1 });
    await base.logits(tokens.slice(0, -1));
    expect(maxDifference(Array.from(await base.logits(tokens.slice(-1))), cached)).toBeGreaterThan(1e-3);
  }, 180_000);

  it('feeds factors at their own rank as file views', async () => {
    await compare(false);
    const adapterDir = path.join(root, 'adapter-lora');
    const config = parsePeftConfig(await fs.readFile(path.join(adapterDir, 'adapter_config.json'), 'utf8'));
    const weights = await fs.readFile(path.join(adapterDir, 'adapter_model.safetensors'));
    expect(graph.shape.dynamicRank).toBe(true);

    const inputs = loraInputsFromAdapter(config, weights, graph.shape);
    const hidden = graph.shape.modules.q_proj!.inFeatures;
    expect(inputs.tensors.get('lora.0.q_proj.A')!.dims).toEqual([4, hidden]);
    expect(inputs.tensors.get('lora.0.v_proj.A')!.dims).toEqual([2, hidden]);
    expect(inputs.tensors.get('lora.0.v_proj.B')!.dims[1]).toBe(2);
    expect(inputs.tensors.has('lora.0.k_proj.A')).toBe(false);
    expect(graph.zeroLora['lora.0.k_proj.A']!.dims).toEqual([1, hidden]);
    // F32 A factors share the file's memory; B factors are scaled copies.
    expect(inputs.tensors.get('lora.0.q_proj.A')!.data.buffer).toBe(weights.buffer);
    expect(inputs.tensors.get('lora.0.q_proj.B')!.data.buffer).not.toBe(weights.buffer);
  });

  it('matches padded factors of fixed-rank graphs', async () => {
    const { cached } = await compare(false);
    const adapterDir = path.join(root, 'adapter-lora');
    const config = parsePeftConfig(await fs.readFile(path.join(adapterDir, 'adapter_config.json'), 'utf8'));
    const weights = await fs.readFile(path.join(adapterDir, 'adapter_model.safetensors'));

    // A graph exported with a fixed rank gets every factor padded to MAX_RANK, and the
    // dynamic graph accepts that layout too, so both layouts must give the same logits.
    const padded = loraInputsFromAdapter(config, weights, { ...graph.shape, dynamicRank: false });
    expect(padded.tensors.get('lora.0.v_proj.A')!.dims).toEqual([MAX_RANK, graph.shape.modules.v_proj!.inFeatures]);
    const feeds: Record<string, ort.Tensor> = {};
    for (const name of Object.keys(graph.zeroLora)) {
      const dims = graph.zeroLora[name]!.dims;
      const zeros = name.endsWith('.A') ? [MAX_RANK, dims[1]!] : [dims[0]!, MAX_RANK];
      feeds[name] = new ort.Tensor('float32', new Float32Array(zeros[0]! * zeros[1]!), zeros);
    }
    for (const [name, { data, dims }] of padded.tensors) feeds[name] = new ort.Tensor('float32', data, dims);

    const generation = new Generation(graph, feeds, [], { temperature: 0, maxTokens: 1, seed: 1 });
    await generation.logits(tokens.slice(0, -1));
    expect(maxDifference(Array.from(await generation.logits(tokens.slice(-1))), cached)).toBeLessThan(TOLERANCE);
  }, 180_000);

  it('rejects a rank above the maximum rank', async () => {
    await compare(false);
    const adapterDir = path.join(root, 'adapter-lora');
    const config = parsePeftConfig(await fs.readFile(path.join(adapterDir, 'adapter_config.json'), 'utf8'));
    const weights = await fs.readFile(path.join(adapterDir, 'adapter_model.safetensors'));
    const narrow = { ...graph.shape, maxRank: 3 };
    expect(() => loraInputsFromAdapter(config, weights, narrow)).toThrow(/has rank 4, above the playground graph's maximum rank 3/);
  });

  it('rejects modules outside the graph', () => {
    const config = parsePeftConfig(JSON.stringify({ peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['lm_head', 'dense'] }));
    const outside = {
      'base_model.model.lm_head.lora_A.weight': /is not a LoRA factor of a decoder layer/,
      'base_model.model.model.layers.0.mlp.dense.lora_A.weight': /targets module dense, which the playground graph has no LoRA input for/,
    };
    for (const [name, message] of Object.entries(outside)) {
      expect(() => loraInputsFromAdapter(config, safetensorsFile({ [name]: [2, 32] }), graph.shape), name).toThrow(message);
    }
  });

  it('rejects DoRA adapters', async () => {
    await compare(false);
    const adapterDir = path.join(root, 'adapter-lora');
    const config = parsePeftConfig(JSON.stringify({ ...JSON.parse(await fs.readFile(path.join(adapterDir, 'adapter_config.json'), 'utf8')), use_dora: true }));
    const weights = await fs.readFile(path.join(adapterDir, 'adapter_model.safetensors'));
    expect(() => loraInputsFromAdapter(config, weights, graph.shape)).toThrow(LoraInputsError);
    expect(() => loraInputsFromAdapter(config, weights, graph.shape)).toThrow(/DoRA \(use_dora: true\)/);
  });
});
