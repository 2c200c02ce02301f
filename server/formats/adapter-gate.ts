import { checkLoraTensors, listSome, type BaseModelShapes, type CompatibilityReport } from './lora-tensors';
import type { LoraConfig } from './peft-config';
import { selectTargetModules } from './peft-targets';
import type { SafetensorsHeader } from './safetensors';
import { servingTargets } from './serving';

/**
 * The compatibility gate for a LoRA adapter: the parsed adapter_config.json and
 * safetensors header against one base model.
 *
 * Errors are problems that no engine can load correctly: malformed files, unpaired or
 * misshapen tensors, modules the base model lacks, a resized vocabulary, DoRA or bias
 * tensors the config does not declare. Problems only one engine has are warnings plus a
 * "no" with its reason in the serving table. For example, PEFT selects modules through
 * target_modules, but vLLM and LoRAX select them by tensor name.
 */
export interface GateBaseModel {
  id: string;
  modules: BaseModelShapes['modules'];
  // config.json fields the worker recorded: model_type, num_hidden_layers, vocab_size, ...
  architecture: Record<string, unknown>;
  parameterCount: number;
}

export interface GateResult {
  errors: string[];
  warnings: string[];
  // Stored as the version's configSummary and shown on the adapter page.
  summary: Record<string, unknown>;
}

function positiveInteger(value: unknown): number | null {
  return Number.isSafeInteger(value) && (value as number) > 0 ? (value as number) : null;
}

/**
 * Compares base_model_name_or_path with the base model the adapter is published for. A hub
 * id or a local path whose last part is the base model id counts as the same model
 * ("HuggingFaceTB/SmolLM2-135M-Instruct" and "smollm2-135m-instruct").
 */
function baseModelWarning(config: LoraConfig, baseId: string): string | null {
  const named = config.baseModelNameOrPath;
  if (named === null) {
    return `adapter_config.json has no base_model_name_or_path, so the model it was trained on is unknown; it was checked against base model ${baseId}`;
  }
  const lastPart = named.split(/[\\/]/).filter(Boolean).pop() ?? named;
  if (named.toLowerCase() === baseId.toLowerCase() || lastPart.toLowerCase() === baseId.toLowerCase()) return null;
  return `adapter_config.json names base model ${JSON.stringify(named)}, but the adapter was checked against base model ${baseId}; `
    + 'its tensor shapes fit, yet a model of the same shape with other weights gives other results';
}

/**
 * Compares the modules target_modules selects with the modules that have tensors. Returns
 * warnings and the reasons PEFT cannot load the adapter as it was trained.
 */
function targetWarnings(config: LoraConfig, base: GateBaseModel, vocabSize: number | null, report: CompatibilityReport) {
  const warnings: string[] = [];
  const peftProblems: string[] = [];
  const selection = selectTargetModules(config, base.modules, vocabSize);
  if (selection.selected === null) {
    warnings.push(`${selection.notEvaluated}, so the modules it selects were not compared with the tensors`);
    return { warnings, peftProblems };
  }

  for (const entry of selection.unmatchedEntries) {
    warnings.push(`target_modules entry ${JSON.stringify(entry)} matches no linear or embedding module of base model ${base.id}`);
  }

  const withTensors = new Set(report.modulesWithTensors);
  if (selection.selected.size === 0) {
    const hint = typeof config.targetModules === 'string' ? ` (a string is a regular expression that must match the whole module name; write ["${config.targetModules}"] to select modules by name)` : '';
    warnings.push(`target_modules ${JSON.stringify(config.targetModules)} selects no module of base model ${base.id}${hint}`);
    peftProblems.push(`PeftModel.from_pretrained raises "Target modules ... not found in the base model" because target_modules ${JSON.stringify(config.targetModules)} selects no module${hint}`);
    return { warnings, peftProblems };
  }

  // A selected module without tensors keeps PEFT's initial lora_B of zeros, so it changes
  // nothing: PEFT loads the adapter with a "missing adapter keys" warning, and so do we.
  const empty = [...selection.selected].filter((name) => !withTensors.has(name)).sort();
  if (empty.length > 0) {
    warnings.push(`target_modules selects ${empty.length} modules with no LoRA tensors in adapter_model.safetensors (${listSome(empty)}); they leave the base model unchanged, so check that the file is complete`);
  }

  // Tensors for modules PEFT does not wrap are skipped without a message when PEFT loads
  // the adapter, while vLLM and LoRAX load them by name.
  const unselected = report.modulesWithTensors.filter((name) => !selection.selected!.has(name)).sort();
  if (unselected.length > 0) {
    warnings.push(`adapter_model.safetensors has LoRA tensors for ${unselected.length} modules that target_modules does not select (${listSome(unselected)}); PEFT ignores them when loading, so add them to target_modules`);
    peftProblems.push(`PEFT ignores the LoRA tensors of ${unselected.length} modules that target_modules does not select (${listSome(unselected)})`);
  }
  return { warnings, peftProblems };
}

/** modules_to_save entries with no saved weight keep the base weights when PEFT loads them. */
function modulesToSaveWarnings(config: LoraConfig, report: CompatibilityReport): string[] {
  const missing = config.modulesToSave.filter((saved) => !report.fullWeights.some((name) => name === saved || name.endsWith(`.${saved}`)));
  if (missing.length === 0) return [];
  return [`modules_to_save names ${missing.join(', ')} but adapter_model.safetensors has no weight for ${missing.length === 1 ? 'it' : 'them'}, so the base weights stay in place`];
}

/** Runs every check of the gate; the adapter may be published only when `errors` is empty. */
export function checkAdapter(config: LoraConfig, header: SafetensorsHeader, base: GateBaseModel): GateResult {
  const vocabSize = positiveInteger(base.architecture.vocab_size);
  const report = checkLoraTensors(header.tensors, config, { id: base.id, modules: base.modules, vocabSize });
  const warnings = [...config.warnings];
  const baseWarning = baseModelWarning(config, base.id);
  if (baseWarning) warnings.push(baseWarning);
  if (report.errors.length > 0) return { errors: report.errors, warnings, summary: {} };

  const targets = targetWarnings(config, base, vocabSize, report);
  warnings.push(...targets.warnings, ...modulesToSaveWarnings(config, report));

  const ranks = [...new Set(report.modules.map((m) => m.rank))].sort((a, b) => a - b);
  const modelType = typeof base.architecture.model_type === 'string' ? base.architecture.model_type : null;
  const summary = {
    peftType: config.peftType,
    peftVersion: typeof config.raw.peft_version === 'string' ? config.raw.peft_version : null,
    rank: config.rank,
    ranks,
    alpha: config.alpha,
    rankPattern: config.rankPattern,
    alphaPattern: config.alphaPattern,
    targetModules: config.targetModules,
    useRslora: config.useRslora,
    useDora: config.useDora,
    modulesToSave: config.modulesToSave,
    fullWeights: report.fullWeights,
    baseModelNameOrPath: config.baseModelNameOrPath,
    checkedBaseModelId: base.id,
    loraModules: report.modules.length,
    trainableParameters: report.trainableParameters,
    shareOfBase: report.trainableParameters / base.parameterCount,
    serving: servingTargets(config, {
      modelType,
      layerCount: positiveInteger(base.architecture.num_hidden_layers),
      loraModules: report.modules,
      fullWeights: report.fullWeights,
      biases: report.biases,
      tokenAdapters: report.tokenAdapters,
      peftProblems: targets.peftProblems,
    }),
  };
  return { errors: [], warnings, summary };
}
