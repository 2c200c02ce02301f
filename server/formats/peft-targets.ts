import { fullMatchRegex, type LoraConfig } from './peft-config';
import type { ModuleShape } from './lora-tensors';

/**
 * Base modules PEFT would wrap with LoRA for a config. The rules follow
 * check_target_module_exists and _maybe_include_all_linear_layers in PEFT's
 * tuners/tuners_utils.py, and the unit tests match PEFT 0.21 on a small Llama. PEFT
 * applies exclude_modules first, then modules_to_save, then target_modules. A string is a
 * full-match regular expression, and a list matches exact names or `.name` suffixes, which
 * layers_to_transform then limits. Only the base model's linear and embedding modules are
 * known here, so a pattern that selects other module types (PEFT rejects those) selects nothing.
 */
export interface TargetSelection {
  // Names of the base modules PEFT would wrap, or null when target_modules cannot be evaluated here.
  selected: Set<string> | null;
  // target_modules list entries that match no linear or embedding module of the base model.
  unmatchedEntries: string[];
  // Reason the selection could not be evaluated; null when `selected` is set.
  notEvaluated: string | null;
}

/** The LoraConfig fields that decide which modules get LoRA layers. */
export type TargetRules = Pick<LoraConfig, 'targetModules' | 'excludeModules' | 'modulesToSave' | 'layersPattern' | 'layersToTransform'>;

const ALL_LINEAR = 'all-linear';

function matchesListEntry(moduleName: string, entry: string): boolean {
  return moduleName === entry || moduleName.endsWith(`.${entry}`);
}

function isExcluded(config: TargetRules, moduleName: string): boolean | null {
  const exclude = config.excludeModules;
  if (typeof exclude === 'string') {
    const regex = fullMatchRegex(exclude);
    if (!regex) return null;
    if (regex.test(moduleName)) return true;
  } else if (exclude && exclude.some((entry) => matchesListEntry(moduleName, entry))) {
    return true;
  }
  // PEFT never puts a LoRA layer inside a module it saves whole: `(^|.*\.)m($|\..*)`.
  return config.modulesToSave.some((saved) => {
    const regex = fullMatchRegex(`(?:.*\\.)?(?:${saved})(?:\\..*)?`);
    return regex ? regex.test(moduleName) : matchesListEntry(moduleName, saved);
  });
}

/** Layer index of a module name, found as PEFT does with `.*\.{layers_pattern}\.(\d+)\.`. */
function layerIndex(config: TargetRules, moduleName: string): number | null {
  const patterns = config.layersPattern ?? ['[^.]*'];
  for (const pattern of patterns) {
    const regex = fullMatchRegex(`.*\\.(?:${pattern})\\.(\\d+)\\..*`);
    const match = regex?.exec(moduleName);
    if (match) return Number(match[1]);
  }
  return null;
}

function inSelectedLayers(config: TargetRules, moduleName: string): boolean {
  if (config.layersToTransform === null) return true;
  const index = layerIndex(config, moduleName);
  return index !== null && config.layersToTransform.includes(index);
}

/**
 * Lists the base modules a config selects. `vocabSize` identifies the output layer, which
 * PEFT leaves out of "all-linear".
 */
export function selectTargetModules(config: TargetRules, baseModules: Record<string, ModuleShape>, vocabSize: number | null): TargetSelection {
  const target = config.targetModules;
  const selected = new Set<string>();
  const matchedEntries = new Set<string>();

  let targetRegex: RegExp | null = null;
  const allLinear = typeof target === 'string' && target.toLowerCase() === ALL_LINEAR;
  if (typeof target === 'string' && !allLinear) {
    targetRegex = fullMatchRegex(target);
    if (!targetRegex) {
      return { selected: null, unmatchedEntries: [], notEvaluated: `target_modules ${JSON.stringify(target)} uses Python regular expression syntax that JavaScript cannot compile` };
    }
  }

  for (const [name, module] of Object.entries(baseModules)) {
    const excluded = isExcluded(config, name);
    if (excluded === null) {
      return { selected: null, unmatchedEntries: [], notEvaluated: `exclude_modules ${JSON.stringify(config.excludeModules)} uses Python regular expression syntax that JavaScript cannot compile` };
    }
    if (excluded) continue;

    if (allLinear) {
      const isOutputLayer = module.kind === 'linear' && vocabSize !== null && module.shape[0] === vocabSize;
      if (module.kind === 'linear' && !isOutputLayer) selected.add(name);
    } else if (targetRegex) {
      if (targetRegex.test(name)) selected.add(name);
    } else if ((target as string[]).includes(name)) {
      // An exact name is taken as it is: PEFT applies layers_to_transform only to suffix matches.
      selected.add(name);
      matchedEntries.add(name);
    } else {
      const entries = (target as string[]).filter((entry) => name.endsWith(`.${entry}`));
      for (const entry of entries) matchedEntries.add(entry);
      if (entries.length > 0 && inSelectedLayers(config, name)) selected.add(name);
    }
  }

  const unmatchedEntries = Array.isArray(target) ? target.filter((entry) => !matchedEntries.has(entry)) : [];
  return { selected, unmatchedEntries, notEvaluated: null };
}
