import type { Hyperparameters } from '../contracts/runner';

/** Requirements of a job, stored with it and matched against a runner's capabilities at claim time. */
export interface JobRequirements {
  // Estimated peak memory of the training process, in bytes (GPU memory, or RAM on a CPU runner).
  memoryBytes: number;
  // True when only a CUDA runner may take the job.
  cuda: boolean;
}

interface Architecture {
  hidden_size?: number;
  num_hidden_layers?: number;
  vocab_size?: number;
  intermediate_size?: number;
  num_attention_heads?: number;
}

const FP32 = 4;

/**
 * Estimates the peak memory of a LoRA fine-tune, in bytes. It adds the base weights in
 * float32, the adapter with its gradients and two AdamW moments, the activations and
 * attention scores kept for the backward pass, and the full-vocabulary logits with their
 * float32 loss copies.
 * NOTE: an estimate for matching jobs to runners, calibrated only against SmolLM2-135M on the
 * CPU (16.9 GB measured peak at sequence 1024, batch 4). It errs on the high side.
 */
export function estimateTrainingMemory(parameterCount: number, architecture: Architecture, hyperparameters: Hyperparameters): number {
  const hidden = architecture.hidden_size ?? 1024;
  const layers = architecture.num_hidden_layers ?? 24;
  const vocab = architecture.vocab_size ?? 32_000;
  const intermediate = architecture.intermediate_size ?? 4 * hidden;
  const heads = architecture.num_attention_heads ?? Math.max(1, Math.round(hidden / 64));
  const tokens = hyperparameters.batchSize * hyperparameters.maxSeqLength;

  const weights = parameterCount * FP32;
  // LoRA on every linear layer of a decoder block: 7 projections, each r × (in + out).
  const loraParameters = layers * hyperparameters.rank * (4 * 2 * hidden + 3 * (hidden + intermediate));
  const adapter = loraParameters * FP32 * 4;
  // Per layer and token: attention and MLP inputs and outputs (about 16 hidden-sized values and
  // 3 intermediate-sized ones) stay alive for the backward pass.
  const activations = tokens * layers * (16 * hidden + 3 * intermediate) * FP32;
  // Eager attention keeps scores and their softmax: batch × heads × sequence² per layer.
  const attention = hyperparameters.batchSize * heads * hyperparameters.maxSeqLength ** 2 * FP32 * 2 * layers;
  // Logits, their softmax and gradient: three float32 copies of tokens × vocabulary.
  const logits = tokens * vocab * FP32 * 3;
  // Allocator slack, the tokenizer, Python and the framework itself.
  const overhead = 1.5 * 1024 ** 3;
  return Math.round(weights + adapter + activations + attention + logits + overhead);
}
