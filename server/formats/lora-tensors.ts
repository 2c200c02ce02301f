import type { TensorInfo } from './safetensors';
import { rankFor, type LoraConfig } from './peft-config';

export interface ModuleShape {
  kind: 'linear' | 'embedding';
  shape: [number, number];
}

export interface CompatibilityReport {
  errors: string[];
  // Modules with a LoRA pair and the rank found in the file.
  modules: { name: string; rank: number }[];
  trainableParameters: number;
}

const LORA_TENSOR = /^(?:base_model\.model\.)?(.+)\.lora_([AB])(?:\.[A-Za-z0-9_-]+)?\.weight$/;
const DORA_MAGNITUDE = /^(?:base_model\.model\.)?(.+)\.lora_magnitude_vector(?:\.[A-Za-z0-9_-]+)?(?:\.weight)?$/;

/**
 * Checks every lora_A/lora_B pair of an adapter file against its config and the base
 * model's module shapes (nn.Linear weights are [out_features, in_features], so lora_A
 * must be [r, in] and lora_B [out, r]). Errors name the tensor, its shape and the
 * expected shape.
 */
export function checkLoraTensors(tensors: TensorInfo[], config: LoraConfig, baseModules: Record<string, ModuleShape>): CompatibilityReport {
  const errors: string[] = [];
  const pairs = new Map<string, { A?: TensorInfo; B?: TensorInfo }>();
  let trainableParameters = 0;

  for (const tensor of tensors) {
    trainableParameters += tensor.shape.reduce((acc, dim) => acc * dim, 1);

    const lora = LORA_TENSOR.exec(tensor.name);
    if (lora) {
      const [, module, side] = lora as unknown as [string, string, 'A' | 'B'];
      const pair = pairs.get(module) ?? {};
      pair[side] = tensor;
      pairs.set(module, pair);
      continue;
    }

    const magnitude = DORA_MAGNITUDE.exec(tensor.name);
    if (magnitude && config.useDora) {
      const base = baseModules[magnitude[1]!];
      if (!base) errors.push(`tensor ${tensor.name}: the base model has no module ${magnitude[1]}`);
      else if (tensor.shape.length !== 1 || tensor.shape[0] !== base.shape[0]) {
        errors.push(`tensor ${tensor.name}: shape [${tensor.shape.join(', ')}], expected [${base.shape[0]}] (DoRA magnitude of ${magnitude[1]})`);
      }
      continue;
    }

    errors.push(checkFullWeight(tensor, baseModules) ?? '');
  }

  // A config whose r disagrees with every tensor is one mistake, not hundreds of shape errors.
  const fileRanks = new Set([...pairs.values()].map((pair) => pair.A?.shape[0]));
  const [onlyRank] = fileRanks;
  if (fileRanks.size === 1 && typeof onlyRank === 'number' && Object.keys(config.rankPattern).length === 0 && onlyRank !== config.rank) {
    errors.push(`adapter_config.json says r=${config.rank} but every lora_A tensor has rank ${onlyRank}; set "r": ${onlyRank} or re-save the adapter`);
    return { errors, modules: [], trainableParameters };
  }

  const modules: { name: string; rank: number }[] = [];
  for (const [module, pair] of pairs) {
    if (!pair.A || !pair.B) {
      const present = (pair.A ?? pair.B)!;
      errors.push(`tensor ${present.name} has no matching lora_${pair.A ? 'B' : 'A'}: LoRA weights come in lora_A/lora_B pairs`);
      continue;
    }
    const base = baseModules[module];
    if (!base || base.kind !== 'linear') {
      errors.push(`tensor ${pair.A.name}: the base model has no linear module ${module}`);
      continue;
    }
    const rank = rankFor(config, module);
    const [outFeatures, inFeatures] = base.shape;
    checkShape(errors, pair.A, [rank, inFeatures]);
    checkShape(errors, pair.B, [outFeatures, rank]);
    modules.push({ name: module, rank });
  }

  if (pairs.size === 0) errors.push('adapter_model.safetensors contains no lora_A/lora_B tensors');
  return { errors: errors.filter(Boolean), modules, trainableParameters };
}

function checkShape(errors: string[], tensor: TensorInfo, expected: [number, number]): void {
  if (tensor.shape.length !== 2 || tensor.shape[0] !== expected[0] || tensor.shape[1] !== expected[1]) {
    errors.push(`tensor ${tensor.name}: shape [${tensor.shape.join(', ')}], expected [${expected.join(', ')}]`);
  }
}

/** modules_to_save and resized embeddings store whole weights; they must match the base shape. */
function checkFullWeight(tensor: TensorInfo, baseModules: Record<string, ModuleShape>): string | null {
  const module = tensor.name.replace(/^base_model\.model\./, '').replace(/\.modules_to_save(?:\.[^.]+)?/, '').replace(/\.weight$/, '');
  const base = baseModules[module];
  if (!base) return `tensor ${tensor.name}: not a LoRA tensor and the base model has no module ${module}`;
  if (tensor.shape[0] !== base.shape[0] || tensor.shape[1] !== base.shape[1]) {
    const hint = base.kind === 'embedding' ? ' (was the vocabulary resized? the base vocabulary has ' + base.shape[0] + ' tokens)' : '';
    return `tensor ${tensor.name}: shape [${tensor.shape.join(', ')}], expected [${base.shape.join(', ')}]${hint}`;
  }
  return null;
}
