import type { ModuleShape } from '@/drizzle/schema';
import type { Hyperparameters } from '../contracts/runner';
import { blockLinearModules } from '../contracts/runner';
import { selectTargetModules } from '../formats/peft-targets';

/** The parts of a stored base model that the preflight reads. */
export interface PreflightBaseModel {
  id: string;
  architecture: Record<string, unknown>;
  modules: Record<string, ModuleShape>;
}

function positiveInteger(value: unknown): number | null {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : null;
}

function shapeText(shape: [number, number]): string {
  return `${shape[0]}×${shape[1]}`;
}

/**
 * Checks a fine-tune's options against the base model's stored architecture before the job
 * is queued, so a job that would fail or train nothing useful is rejected with a fix. Returns
 * one message per problem, empty when the options fit. `contextLength` is the base model's
 * max_position_embeddings, or null when it is unknown, which skips that check.
 */
export function preflightFinetune(base: PreflightBaseModel, options: Hyperparameters, contextLength: number | null): string[] {
  const problems: string[] = [];

  if (contextLength !== null && options.maxSeqLength > contextLength) {
    problems.push(`maxSeqLength ${options.maxSeqLength} exceeds the context of base model ${base.id} (${contextLength} tokens, max_position_embeddings); set maxSeqLength to at most ${contextLength}`);
  }

  const vocabSize = positiveInteger(base.architecture.vocab_size);
  const selection = selectTargetModules(
    { targetModules: options.targetModules, excludeModules: null, modulesToSave: [], layersPattern: null, layersToTransform: null },
    base.modules,
    vocabSize,
  );
  // A list entry is matched by exact name or name suffix, so it is never a regular expression
  // and the selection is always evaluated.
  const selected = [...(selection.selected ?? [])];
  const known = blockLinearModules.filter((name) => Object.keys(base.modules).some((module) => module.endsWith(`.${name}`)));
  for (const entry of selection.unmatchedEntries) {
    problems.push(`targetModules entry ${JSON.stringify(entry)} matches no module of base model ${base.id}; use "all-linear" or names it has: ${known.join(', ')}`);
  }

  const outputLayers = selected.filter((name) => base.modules[name]!.kind === 'linear' && vocabSize !== null && base.modules[name]!.shape[0] === vocabSize);
  for (const name of outputLayers) {
    problems.push(`targetModules selects the output layer ${name}; LoRA here trains only the decoder blocks' linear layers, so remove it or use "all-linear"`);
  }
  const embeddings = selected.filter((name) => base.modules[name]!.kind === 'embedding');
  for (const name of embeddings) {
    problems.push(`targetModules selects the embedding ${name}; LoRA here trains only linear layers, so remove it or use "all-linear"`);
  }
  const linear = selected.filter((name) => base.modules[name]!.kind === 'linear' && !outputLayers.includes(name));
  if (linear.length === 0 && selection.unmatchedEntries.length === 0 && outputLayers.length === 0 && embeddings.length === 0) {
    problems.push(`targetModules ${JSON.stringify(options.targetModules)} selects no linear layer of base model ${base.id}; use "all-linear"`);
  }

  // AdaLoRA starts every module at initialRank, so that is the rank that must fit.
  const rank = options.adalora ? options.adalora.initialRank : options.rank;
  const rankName = options.adalora ? 'adalora.initialRank' : 'rank';
  const tooSmall = linear.filter((name) => rank > Math.min(...base.modules[name]!.shape));
  if (tooSmall.length > 0) {
    const smallest = tooSmall.reduce((best, name) => (Math.min(...base.modules[name]!.shape) < Math.min(...base.modules[best]!.shape) ? name : best));
    const limit = Math.min(...linear.map((name) => Math.min(...base.modules[name]!.shape)));
    const leafNames = [...new Set(tooSmall.map((name) => name.slice(name.lastIndexOf('.') + 1)))];
    problems.push(`${rankName} ${rank} exceeds the smaller dimension of ${tooSmall.length} targeted modules, such as ${smallest} (${shapeText(base.modules[smallest]!.shape)}), so the update cannot have that rank; set ${rankName} to at most ${limit} or leave ${leafNames.join(', ')} out of targetModules`);
  }
  return problems;
}
