/**
 * Parser for PEFT's `adapter_config.json` (LoRA). Known keys are checked; unknown keys
 * are kept and reported as warnings, because newer PEFT releases add fields freely.
 */

export interface LoraConfig {
  peftType: 'LORA';
  rank: number;
  alpha: number;
  // A list selects modules by exact name or name suffix. A string is a Python regular
  // expression that must match the whole module name (PEFT's check_target_module_exists).
  targetModules: string[] | string;
  excludeModules: string[] | string | null;
  // Layer indexes LoRA was limited to (layers_to_transform), or null for every layer.
  layersToTransform: number[] | null;
  // Names of the layer list that layersToTransform counts in (layers_pattern), or null for any.
  layersPattern: string[] | null;
  rankPattern: Record<string, number>;
  alphaPattern: Record<string, number>;
  useRslora: boolean;
  useDora: boolean;
  // PEFT's lora_bias: lora_B carries a bias vector.
  loraBias: boolean;
  // Base-layer biases trained along: "none", "all" or "lora_only".
  bias: string;
  modulesToSave: string[];
  // trainable_token_indices: token ids whose embedding rows were trained, by module suffix.
  trainableTokenIndices: Record<string, number[]>;
  baseModelNameOrPath: string | null;
  raw: Record<string, unknown>;
  warnings: string[];
}

export class PeftConfigError extends Error {
  override name = 'PeftConfigError';
}

// Fields PEFT's LoraConfig writes (0.6 through 0.21); anything else is reported, not rejected.
const KNOWN_KEYS = new Set([
  'peft_type', 'task_type', 'r', 'lora_alpha', 'lora_dropout', 'target_modules', 'rank_pattern', 'alpha_pattern',
  'use_rslora', 'use_dora', 'modules_to_save', 'base_model_name_or_path', 'bias', 'fan_in_fan_out', 'inference_mode',
  'init_lora_weights', 'layers_to_transform', 'layers_pattern', 'revision', 'auto_mapping', 'megatron_config',
  'megatron_core', 'loftq_config', 'layer_replication', 'runtime_config', 'exclude_modules', 'eva_config',
  'lora_bias', 'use_qalora', 'qalora_group_size', 'corda_config', 'target_parameters', 'trainable_token_indices',
  'peft_version', 'alora_invocation_tokens', 'arrow_config', 'ensure_weight_tying', 'lora_ga_config',
  'kasa_config', 'monteclora_config', 'use_bdlora', 'velora_config',
]);

const BIAS_VALUES = ['none', 'all', 'lora_only'];

function positiveNumberMap(raw: unknown, key: string, integers: boolean): Record<string, number> {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new PeftConfigError(`${key} must be an object mapping module patterns to numbers`);
  for (const [pattern, value] of Object.entries(raw)) {
    const valid = typeof value === 'number' && value > 0 && (!integers || Number.isInteger(value));
    if (!valid) throw new PeftConfigError(`${key}.${pattern} must be a positive ${integers ? 'integer' : 'number'}, got ${JSON.stringify(value)}`);
  }
  return raw as Record<string, number>;
}

function isStringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

function isIndexList(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((item) => Number.isSafeInteger(item) && (item as number) >= 0);
}

function stringOrList(raw: unknown, key: string): string[] | string | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw === 'string' || isStringList(raw)) return raw;
  throw new PeftConfigError(`${key} must be a list of module names, a regular expression string or null, got ${JSON.stringify(raw)}`);
}

function layerIndexes(raw: unknown): number[] | null {
  if (raw === undefined || raw === null) return null;
  if (Number.isSafeInteger(raw) && (raw as number) >= 0) return [raw as number];
  if (isIndexList(raw)) return raw.length === 0 ? null : raw;
  throw new PeftConfigError(`layers_to_transform must be a layer index, a list of layer indexes or null, got ${JSON.stringify(raw)}`);
}

function layerPatterns(raw: unknown): string[] | null {
  if (raw === undefined || raw === null || raw === '') return null;
  if (typeof raw === 'string') return [raw];
  if (isStringList(raw)) return raw.length === 0 ? null : raw;
  throw new PeftConfigError(`layers_pattern must be a name, a list of names or null, got ${JSON.stringify(raw)}`);
}

// A bare list applies to the input embedding, which PEFT resolves to `embed_tokens` for the
// decoder models served here.
function tokenIndices(raw: unknown): Record<string, number[]> {
  if (raw === undefined || raw === null) return {};
  if (isIndexList(raw)) return { embed_tokens: raw };
  if (typeof raw === 'object' && !Array.isArray(raw) && Object.values(raw).every(isIndexList)) return raw as Record<string, number[]>;
  throw new PeftConfigError(`trainable_token_indices must be a list of token ids or an object mapping module names to lists of token ids, got ${JSON.stringify(raw)}`);
}

export function parsePeftConfig(text: string): LoraConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new PeftConfigError(`adapter_config.json is not valid JSON: ${(error as Error).message}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new PeftConfigError('adapter_config.json must contain a JSON object');
  const config = raw as Record<string, unknown>;

  if (config.peft_type !== 'LORA') {
    throw new PeftConfigError(`peft_type ${JSON.stringify(config.peft_type)} is not supported; only LoRA adapters ("peft_type": "LORA") can be published`);
  }
  const rank = config.r;
  if (!Number.isInteger(rank) || (rank as number) < 1) throw new PeftConfigError(`r must be a positive integer, got ${JSON.stringify(rank)}`);
  const alpha = config.lora_alpha ?? 8;
  if (typeof alpha !== 'number' || !(alpha > 0)) throw new PeftConfigError(`lora_alpha must be a positive number, got ${JSON.stringify(alpha)}`);

  const target = config.target_modules;
  if (!(typeof target === 'string' || isStringList(target))) {
    const parameters = config.target_parameters ? '; target_parameters without target_modules (LoRA on bare parameters) is not supported' : '';
    throw new PeftConfigError(`target_modules must be a list of module names or a regular expression string, got ${JSON.stringify(target)}${parameters}`);
  }

  const modulesToSave = config.modules_to_save ?? [];
  if (!isStringList(modulesToSave)) {
    throw new PeftConfigError('modules_to_save must be a list of module names or null');
  }

  const bias = config.bias ?? 'none';
  if (typeof bias !== 'string' || !BIAS_VALUES.includes(bias)) {
    throw new PeftConfigError(`bias must be one of ${BIAS_VALUES.map((value) => `"${value}"`).join(', ')}, got ${JSON.stringify(bias)}`);
  }

  const base = config.base_model_name_or_path;
  const warnings = Object.keys(config)
    .filter((key) => !KNOWN_KEYS.has(key))
    .map((key) => `unknown key "${key}" in adapter_config.json was kept but not checked (written by a newer PEFT release?)`);

  return {
    peftType: 'LORA',
    rank: rank as number,
    alpha,
    targetModules: target,
    excludeModules: stringOrList(config.exclude_modules, 'exclude_modules'),
    layersToTransform: layerIndexes(config.layers_to_transform),
    layersPattern: layerPatterns(config.layers_pattern),
    rankPattern: positiveNumberMap(config.rank_pattern, 'rank_pattern', true),
    alphaPattern: positiveNumberMap(config.alpha_pattern, 'alpha_pattern', false),
    useRslora: config.use_rslora === true,
    useDora: config.use_dora === true,
    loraBias: config.lora_bias === true,
    bias,
    modulesToSave,
    trainableTokenIndices: tokenIndices(config.trainable_token_indices),
    baseModelNameOrPath: typeof base === 'string' && base !== '' ? base : null,
    raw: config,
    warnings,
  };
}

/**
 * Translates a Python `re` pattern into a JavaScript regular expression that must match the
 * whole string, or returns null when JavaScript cannot compile it (inline flags such as
 * `(?i)`, possessive quantifiers). Named groups and `\A`, `\Z` are rewritten; the rest of
 * the syntax PEFT configs use (classes, groups, alternation, quantifiers) is shared.
 */
export function fullMatchRegex(pattern: string): RegExp | null {
  let translated = '';
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i]!;
    if (char === '\\' && i + 1 < pattern.length) {
      const next = pattern[i + 1]!;
      if (next === 'A') translated += '^';
      else if (next === 'Z') translated += '$';
      else translated += char + next;
      i++;
    } else if (pattern.startsWith('(?P<', i)) {
      translated += '(?<';
      i += 3;
    } else if (pattern.startsWith('(?P=', i)) {
      const close = pattern.indexOf(')', i);
      if (close < 0) return null;
      translated += `\\k<${pattern.slice(i + 4, close)}>`;
      i = close;
    } else {
      translated += char;
    }
  }
  try {
    return new RegExp(`^(?:${translated})$`);
  } catch {
    return null;
  }
}

/**
 * Finds the rank_pattern or alpha_pattern key that applies to a module the way PEFT's
 * get_pattern_key does: the first key `k` for which `(.*\.)?(k)$` matches the whole module
 * name wins. A key JavaScript cannot compile is compared as a literal name suffix.
 */
function patternValue(patterns: Record<string, number>, moduleName: string): number | undefined {
  for (const [pattern, value] of Object.entries(patterns)) {
    const regex = fullMatchRegex(`(?:.*\\.)?(?:${pattern})`);
    const matches = regex ? regex.test(moduleName) : moduleName === pattern || moduleName.endsWith(`.${pattern}`);
    if (matches) return value;
  }
  return undefined;
}

/** Returns the rank of one module: its rank_pattern entry, else r. */
export function rankFor(config: LoraConfig, moduleName: string): number {
  return patternValue(config.rankPattern, moduleName) ?? config.rank;
}

/** Returns the lora_alpha of one module: its alpha_pattern entry, else lora_alpha. */
export function alphaFor(config: LoraConfig, moduleName: string): number {
  return patternValue(config.alphaPattern, moduleName) ?? config.alpha;
}
