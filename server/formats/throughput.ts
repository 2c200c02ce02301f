/**
 * Training speed by hardware class, for the time estimates the fine-tune wizard shows.
 *
 * Figures are tokens per second for LoRA on a 135M-parameter model (SmolLM2-135M), and are
 * scaled by 135M / the base model's parameter count, because training compute per token
 * grows about linearly with the parameter count. Only the CPU figure is measured; the GPU
 * figures are assumptions, and the wizard and docs/datasets.md label them as such.
 */
export interface HardwareClass {
  id: string;
  label: string;
  tokensPerSecond: number;
  measured: boolean;
  basis: string;
}

export const REFERENCE_PARAMETERS = 135_000_000;

export const HARDWARE_CLASSES: HardwareClass[] = [
  {
    id: 'cpu', label: 'CPU runner (2 cores)', tokensPerSecond: 350, measured: true,
    basis: 'measured: 350 tokens/s for a whole 200-example PubMedQA LoRA job at 512 tokens, float32, 2-core Intel Xeon, docs/benchmarks.md',
  },
  {
    id: 'gpu-24gb', label: 'GPU, 24 GB class (L4, A10G)', tokensPerSecond: 8_000, measured: false,
    basis: 'assumption, not measured',
  },
  {
    id: 'gpu-80gb', label: 'GPU, 80 GB class (A100, H100)', tokensPerSecond: 25_000, measured: false,
    basis: 'assumption, not measured',
  },
];

/** Estimates the seconds of one epoch; an estimate, not a promise. */
export function estimateEpochSeconds(trainingTokens: number, hardware: HardwareClass, parameterCount: number): number {
  const tokensPerSecond = hardware.tokensPerSecond * (REFERENCE_PARAMETERS / Math.max(parameterCount, 1));
  return trainingTokens / tokensPerSecond;
}
