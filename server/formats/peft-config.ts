/**
 * Parser for PEFT's `adapter_config.json` (LoRA). Known keys are checked; unknown keys
 * are kept and reported as warnings, because newer PEFT releases add fields freely.
 */

export interface LoraConfig {
  peftType: 'LORA';
  rank: number;
  alpha: number;
  targetModules: string[] | string;
  rankPattern: Record<string, number>;
  alphaPattern: Record<string, number>;
  useRslora: boolean;
  useDora: boolean;
  modulesToSave: string[];
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

function positiveNumberMap(raw: unknown, key: string): Record<string, number> {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new PeftConfigError(`${key} must be an object mapping module patterns to numbers`);
  for (const [pattern, value] of Object.entries(raw)) {
    if (typeof value !== 'number' || !(value > 0)) throw new PeftConfigError(`${key}.${pattern} must be a positive number, got ${JSON.stringify(value)}`);
  }
  return raw as Record<string, number>;
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
  if (!(typeof target === 'string' || (Array.isArray(target) && target.every((t) => typeof t === 'string')))) {
    throw new PeftConfigError('target_modules must be a list of module names or a regular expression string');
  }

  const modulesToSave = config.modules_to_save ?? [];
  if (!Array.isArray(modulesToSave) || !modulesToSave.every((m) => typeof m === 'string')) {
    throw new PeftConfigError('modules_to_save must be a list of module names or null');
  }

  const base = config.base_model_name_or_path;
  const warnings = Object.keys(config)
    .filter((key) => !KNOWN_KEYS.has(key))
    .map((key) => `unknown key "${key}" in adapter_config.json was kept but not checked (written by a newer PEFT release?)`);

  return {
    peftType: 'LORA',
    rank: rank as number,
    alpha,
    targetModules: target as string[] | string,
    rankPattern: positiveNumberMap(config.rank_pattern, 'rank_pattern'),
    alphaPattern: positiveNumberMap(config.alpha_pattern, 'alpha_pattern'),
    useRslora: config.use_rslora === true,
    useDora: config.use_dora === true,
    modulesToSave: modulesToSave as string[],
    baseModelNameOrPath: typeof base === 'string' ? base : null,
    raw: config,
    warnings,
  };
}

/**
 * Returns the rank of one module, honouring rank_pattern the way PEFT does: the first
 * pattern whose regular expression matches the end of the module name wins.
 */
export function rankFor(config: LoraConfig, moduleName: string): number {
  for (const [pattern, rank] of Object.entries(config.rankPattern)) {
    if (new RegExp(`(^|\\.)${pattern}$`).test(moduleName)) return rank;
  }
  return config.rank;
}
