import type { TensorInfo } from './safetensors';
import { alphaFor, rankFor, type LoraConfig } from './peft-config';

export interface ModuleShape {
  kind: 'linear' | 'embedding';
  shape: [number, number];
}

/** Base model facts the tensor check uses. */
export interface BaseModelShapes {
  id: string;
  // nn.Linear weights are [out_features, in_features]; nn.Embedding weights are [num_embeddings, embedding_dim].
  modules: Record<string, ModuleShape>;
  // Tokens in the base vocabulary (vocab_size in config.json), or null when unknown.
  vocabSize: number | null;
}

export interface LoraModule {
  name: string;
  kind: 'linear' | 'embedding';
  rank: number;
  alpha: number;
}

export interface CompatibilityReport {
  errors: string[];
  // Modules with a lora_A/lora_B (or lora_embedding_A/B) pair of the expected shapes.
  modules: LoraModule[];
  // Every module that has LoRA tensors of any shape, to compare with target_modules.
  modulesWithTensors: string[];
  // Base modules whose whole weight the file replaces (modules_to_save or saved embeddings).
  fullWeights: string[];
  // Modules with a bias tensor: lora_B.bias (lora_bias) or a trained base-layer bias.
  biases: string[];
  // Modules with trainable token rows (trainable_token_indices).
  tokenAdapters: string[];
  trainableParameters: number;
}

type TensorRole =
  | { role: 'lora'; module: string; side: 'A' | 'B' }
  | { role: 'embedding-lora'; module: string; side: 'A' | 'B' }
  | { role: 'lora-bias'; module: string }
  | { role: 'magnitude'; module: string }
  | { role: 'token-adapter'; module: string }
  | { role: 'full'; module: string; parameter: 'weight' | 'bias' };

// PEFT saves tensors as base_model.model.<module>.<suffix> and drops the adapter name
// ("default"); files written by other tools may keep the name or lack the prefix.
// Tensor names PEFT 0.21 writes, checked with save_pretrained on a small Llama:
//   lora_A.weight [r, in], lora_B.weight [out, r], lora_B.bias [out] (lora_bias),
//   lora_embedding_A [r, num_embeddings], lora_embedding_B [embedding_dim, r],
//   lora_magnitude_vector [out] (DoRA), token_adapter.trainable_tokens_delta [tokens, dim],
//   <module>.weight for modules_to_save and <module>.base_layer.weight for saved embeddings.
const ADAPTER_NAME = '(?:\\.[A-Za-z0-9_-]+)?';
const TENSOR_ROLES: [RegExp, (match: RegExpExecArray) => TensorRole][] = [
  [new RegExp(`^(.+)\\.lora_([AB])${ADAPTER_NAME}\\.weight$`), (m) => ({ role: 'lora', module: m[1]!, side: m[2] as 'A' | 'B' })],
  [new RegExp(`^(.+)\\.lora_B${ADAPTER_NAME}\\.bias$`), (m) => ({ role: 'lora-bias', module: m[1]! })],
  [new RegExp(`^(.+)\\.lora_embedding_([AB])${ADAPTER_NAME}$`), (m) => ({ role: 'embedding-lora', module: m[1]!, side: m[2] as 'A' | 'B' })],
  [new RegExp(`^(.+)\\.lora_magnitude_vector${ADAPTER_NAME}(?:\\.weight)?$`), (m) => ({ role: 'magnitude', module: m[1]! })],
  [new RegExp(`^(.+)\\.token_adapter\\.trainable_tokens_delta${ADAPTER_NAME}$`), (m) => ({ role: 'token-adapter', module: m[1]! })],
  [new RegExp(`^(.+?)(?:\\.base_layer)?(?:\\.modules_to_save${ADAPTER_NAME})?\\.(weight|bias)$`), (m) => ({ role: 'full', module: m[1]!, parameter: m[2] as 'weight' | 'bias' })],
];

function roleOf(tensorName: string): TensorRole | null {
  const name = tensorName.replace(/^base_model\.model\./, '');
  for (const [pattern, build] of TENSOR_ROLES) {
    const match = pattern.exec(name);
    if (match) return build(match);
  }
  return null;
}

function formatShape(shape: number[]): string {
  return `[${shape.join(', ')}]`;
}

function isVocabularyModule(base: BaseModelShapes, module: ModuleShape): boolean {
  return base.vocabSize !== null && module.shape[0] === base.vocabSize;
}

/** Builds the message for the failure users report most: a vocabulary resized before training. */
export function resizedVocabularyError(tensor: TensorInfo, adapterVocabulary: number, base: BaseModelShapes): string {
  return `tensor ${tensor.name} has shape ${formatShape(tensor.shape)}, a vocabulary of ${adapterVocabulary} tokens, but base model ${base.id} has a vocabulary of ${base.vocabSize} tokens: `
    + 'the vocabulary was resized (tokens added and resize_token_embeddings called) before training. '
    + `Train the adapter again without adding tokens, or register the resized model as a base model of its own`;
}

interface Pair {
  A?: TensorInfo;
  B?: TensorInfo;
}

class TensorCheck {
  readonly errors: string[] = [];
  readonly pairs = new Map<string, Pair>();
  readonly embeddingPairs = new Map<string, Pair>();
  readonly magnitudes = new Set<string>();
  readonly fullWeights = new Set<string>();
  readonly biases = new Set<string>();
  readonly tokenAdapters = new Set<string>();
  trainableParameters = 0;

  constructor(private readonly config: LoraConfig, private readonly base: BaseModelShapes) {}

  add(tensor: TensorInfo): void {
    this.trainableParameters += tensor.shape.reduce((acc, dim) => acc * dim, 1);
    const role = roleOf(tensor.name);
    if (role === null) {
      this.errors.push(`tensor ${tensor.name} is not a LoRA, DoRA or saved-module tensor that PEFT writes`);
      return;
    }
    if (role.role === 'lora' || role.role === 'embedding-lora') {
      const pairs = role.role === 'lora' ? this.pairs : this.embeddingPairs;
      const pair = pairs.get(role.module) ?? {};
      pair[role.side] = tensor;
      pairs.set(role.module, pair);
    } else if (role.role === 'lora-bias') {
      this.checkLoraBias(tensor, role.module);
    } else if (role.role === 'magnitude') {
      this.checkMagnitude(tensor, role.module);
    } else if (role.role === 'token-adapter') {
      this.checkTokenAdapter(tensor, role.module);
    } else {
      this.checkFullTensor(tensor, role.module, role.parameter);
    }
  }

  private expect(tensor: TensorInfo, expected: number[]): boolean {
    const matches = tensor.shape.length === expected.length && tensor.shape.every((dim, i) => dim === expected[i]);
    if (!matches) this.errors.push(`tensor ${tensor.name}: shape ${formatShape(tensor.shape)}, expected ${formatShape(expected)}`);
    return matches;
  }

  private baseModule(tensor: TensorInfo, module: string): ModuleShape | null {
    const found = this.base.modules[module];
    if (!found) this.errors.push(`tensor ${tensor.name}: the base model has no module ${module}`);
    return found ?? null;
  }

  private checkLoraBias(tensor: TensorInfo, module: string): void {
    const base = this.baseModule(tensor, module);
    if (!base) return;
    if (!this.config.loraBias) {
      this.errors.push(`tensor ${tensor.name} is a LoRA bias but adapter_config.json does not set "lora_bias": true, so PEFT would drop it; set "lora_bias": true or save the adapter without it`);
      return;
    }
    if (this.expect(tensor, [base.shape[0]])) this.biases.add(module);
  }

  private checkMagnitude(tensor: TensorInfo, module: string): void {
    if (!this.config.useDora) {
      this.errors.push(`tensor ${tensor.name} is a DoRA magnitude vector but adapter_config.json does not set "use_dora": true, so PEFT would load the adapter as plain LoRA; set "use_dora": true`);
      return;
    }
    const base = this.baseModule(tensor, module);
    if (!base) return;
    // NOTE: only linear layers are checked exactly; an embedding's magnitude is accepted as any vector.
    const valid = base.kind === 'linear' ? this.expect(tensor, [base.shape[0]]) : tensor.shape.length === 1;
    if (valid) this.magnitudes.add(module);
    else if (base.kind === 'embedding') this.errors.push(`tensor ${tensor.name}: shape ${formatShape(tensor.shape)}, expected a vector`);
  }

  private checkTokenAdapter(tensor: TensorInfo, module: string): void {
    const base = this.baseModule(tensor, module);
    if (!base) return;
    const entry = Object.entries(this.config.trainableTokenIndices).find(([name]) => module === name || module.endsWith(`.${name}`));
    if (!entry) {
      this.errors.push(`tensor ${tensor.name} holds trainable token rows but trainable_token_indices in adapter_config.json does not name ${module}; add its token ids there`);
      return;
    }
    const indices = entry[1];
    const beyond = indices.filter((index) => this.base.vocabSize !== null && index >= this.base.vocabSize);
    if (beyond.length > 0) {
      this.errors.push(`trainable_token_indices for ${module} includes token ids ${beyond.slice(0, 5).join(', ')} but base model ${this.base.id} has a vocabulary of ${this.base.vocabSize} tokens: the vocabulary was resized before training. Train the adapter again without adding tokens, or register the resized model as a base model of its own`);
      return;
    }
    if (this.expect(tensor, [indices.length, base.shape[1]])) this.tokenAdapters.add(module);
  }

  private checkFullTensor(tensor: TensorInfo, module: string, parameter: 'weight' | 'bias'): void {
    const base = this.base.modules[module];
    if (!base) {
      this.errors.push(`tensor ${tensor.name}: not a LoRA tensor and the base model has no module ${module}`);
      return;
    }
    if (parameter === 'bias') {
      if (base.kind !== 'linear') this.errors.push(`tensor ${tensor.name}: module ${module} is an embedding, which has no bias`);
      else if (this.expect(tensor, [base.shape[0]])) this.biases.add(module);
      return;
    }
    const resized = isVocabularyModule(this.base, base) && tensor.shape.length === 2 && tensor.shape[0] !== base.shape[0] && tensor.shape[1] === base.shape[1];
    if (resized) this.errors.push(resizedVocabularyError(tensor, tensor.shape[0]!, this.base));
    else if (this.expect(tensor, base.shape)) this.fullWeights.add(module);
  }

  /** Checks each lora_A/lora_B pair: A is [r, in] and B is [out, r] for an nn.Linear [out, in]. */
  checkLinearPairs(modules: LoraModule[]): void {
    for (const [module, pair] of this.pairs) {
      if (!pair.A || !pair.B) {
        this.errors.push(`tensor ${(pair.A ?? pair.B)!.name} has no matching lora_${pair.A ? 'B' : 'A'}: LoRA weights come in lora_A/lora_B pairs`);
        continue;
      }
      const base = this.base.modules[module];
      // NOTE: PEFT's layer_replication names layers past the base model's count, so such adapters are rejected here.
      if (!base) {
        this.errors.push(`tensor ${pair.A.name}: the base model has no linear module ${module}`);
        continue;
      }
      if (base.kind !== 'linear') {
        this.errors.push(`tensor ${pair.A.name}: module ${module} is an embedding, for which PEFT stores lora_embedding_A and lora_embedding_B, not lora_A/lora_B`);
        continue;
      }
      const rank = rankFor(this.config, module);
      const [outFeatures, inFeatures] = base.shape;
      const validA = this.expect(pair.A, [rank, inFeatures]);
      // lm_head has one output row per token, so a resized vocabulary shows in lora_B.
      const resized = isVocabularyModule(this.base, base) && pair.B.shape.length === 2 && pair.B.shape[0] !== outFeatures && pair.B.shape[1] === rank;
      if (resized) this.errors.push(resizedVocabularyError(pair.B, pair.B.shape[0]!, this.base));
      const validB = !resized && this.expect(pair.B, [outFeatures, rank]);
      if (validA && validB) modules.push({ name: module, kind: 'linear', rank, alpha: alphaFor(this.config, module) });
    }
  }

  /** Checks lora_embedding_A [r, num_embeddings] and lora_embedding_B [embedding_dim, r]. */
  checkEmbeddingPairs(modules: LoraModule[]): void {
    for (const [module, pair] of this.embeddingPairs) {
      if (!pair.A || !pair.B) {
        this.errors.push(`tensor ${(pair.A ?? pair.B)!.name} has no matching lora_embedding_${pair.A ? 'B' : 'A'}: LoRA weights come in pairs`);
        continue;
      }
      const base = this.base.modules[module];
      if (!base || base.kind !== 'embedding') {
        this.errors.push(`tensor ${pair.A.name}: the base model has no embedding module ${module}`);
        continue;
      }
      const rank = rankFor(this.config, module);
      const [numEmbeddings, embeddingDim] = base.shape;
      const resized = isVocabularyModule(this.base, base) && pair.A.shape.length === 2 && pair.A.shape[0] === rank && pair.A.shape[1] !== numEmbeddings;
      if (resized) this.errors.push(resizedVocabularyError(pair.A, pair.A.shape[1]!, this.base));
      const validA = !resized && this.expect(pair.A, [rank, numEmbeddings]);
      const validB = this.expect(pair.B, [embeddingDim, rank]);
      if (validA && validB) modules.push({ name: module, kind: 'embedding', rank, alpha: alphaFor(this.config, module) });
    }
  }

  /** Names the single rank every lora_A tensor has when it differs from r: one mistake, not hundreds of shape errors. */
  rankMismatch(): string | null {
    if (Object.keys(this.config.rankPattern).length > 0) return null;
    const fileRanks = new Set([...this.pairs.values(), ...this.embeddingPairs.values()].map((pair) => pair.A?.shape[0]));
    const [onlyRank] = fileRanks;
    if (fileRanks.size !== 1 || typeof onlyRank !== 'number' || onlyRank === this.config.rank) return null;
    return `adapter_config.json sets r=${this.config.rank} but every lora_A tensor has rank ${onlyRank}; set "r": ${onlyRank} or save the adapter again`;
  }
}

/**
 * Checks every tensor of an adapter file against its config and the base model's module
 * shapes. Errors name the tensor, its shape and the expected shape. The check is pure: it
 * reads only the header's names and shapes, never tensor data.
 */
export function checkLoraTensors(tensors: TensorInfo[], config: LoraConfig, base: BaseModelShapes): CompatibilityReport {
  const check = new TensorCheck(config, base);
  for (const tensor of tensors) check.add(tensor);

  const report: CompatibilityReport = {
    errors: check.errors,
    modules: [],
    modulesWithTensors: [...new Set([...check.pairs.keys(), ...check.embeddingPairs.keys(), ...check.magnitudes])],
    fullWeights: [...check.fullWeights],
    biases: [...check.biases],
    tokenAdapters: [...check.tokenAdapters],
    trainableParameters: check.trainableParameters,
  };

  if (check.pairs.size === 0 && check.embeddingPairs.size === 0) {
    report.errors.push('adapter_model.safetensors contains no lora_A/lora_B tensors');
    return report;
  }
  const mismatch = check.rankMismatch();
  if (mismatch) {
    report.errors.push(mismatch);
    return report;
  }

  check.checkLinearPairs(report.modules);
  check.checkEmbeddingPairs(report.modules);

  if (config.useDora) {
    const missing = report.modules.filter((module) => module.kind === 'linear' && !check.magnitudes.has(module.name)).map((module) => module.name);
    if (missing.length > 0) {
      report.errors.push(`adapter_config.json sets "use_dora": true but ${missing.length} LoRA modules have no lora_magnitude_vector (${listSome(missing)}); without it PEFT starts the magnitude from the base weights and the adapter no longer matches its training; save the adapter again with PEFT`);
    }
  }
  return report;
}

/** Lists the first few names and counts the rest, to keep messages short. */
export function listSome(names: string[], limit = 3): string {
  const head = names.slice(0, limit).join(', ');
  return names.length > limit ? `${head} and ${names.length - limit} more` : head;
}
