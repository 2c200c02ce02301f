import { z } from 'zod';
import { evaluationResult, failureReasons, workerEvent } from './worker-events';

/** Messages between the runner and the app, shared by the tRPC router and gpu-runner. */

/** Module names of a Llama-style decoder block that targetModules may list: attention projections and MLP. */
export const blockLinearModules = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;

/** AdaLoRA's rank budget and schedule, in optimizer steps (PEFT AdaLoraConfig: init_r, target_r, tinit, tfinal, deltaT). */
export const adaloraOptions = z.object({
  initialRank: z.number().int().min(1).max(512),
  targetRank: z.number().int().min(1).max(512),
  tinit: z.number().int().min(0),
  tfinal: z.number().int().min(0),
  deltaT: z.number().int().min(1),
}).refine((value) => value.targetRank <= value.initialRank, {
  message: 'adalora.targetRank exceeds adalora.initialRank; AdaLoRA only prunes, so set targetRank at most initialRank',
  path: ['targetRank'],
});

/**
 * Training options of a fine-tune; the worker's spec.py mirrors them. Options added after the
 * first version have defaults, so older callers and stored jobs stay valid.
 */
export const hyperparameters = z.object({
  rank: z.number().int().min(1).max(512),
  alpha: z.number().positive().max(4096),
  dropout: z.number().min(0).max(0.9).default(0.05),
  // "all-linear": every linear layer of the decoder blocks (attention and MLP), never lm_head.
  targetModules: z.union([z.literal('all-linear'), z.array(z.string().min(1)).min(1)]).default('all-linear'),
  // rsLoRA scales the update by alpha/sqrt(rank) instead of alpha/rank.
  useRslora: z.boolean().default(false),
  useDora: z.boolean().default(false),
  // When set, the job trains AdaLoRA and `rank` is unused.
  adalora: adaloraOptions.nullable().default(null),
  learningRate: z.number().positive().max(1),
  lrScheduler: z.enum(['linear', 'cosine', 'constant']).default('linear'),
  epochs: z.number().positive().max(100),
  maxSteps: z.number().int().positive().nullable().default(null),
  batchSize: z.number().int().min(1).max(512),
  gradientAccumulation: z.number().int().min(1).max(512).default(1),
  maxSeqLength: z.number().int().min(16).max(32768),
  // Packs several examples into each row of maxSeqLength tokens, each attending only to itself.
  packing: z.boolean().default(false),
  warmupRatio: z.number().min(0).max(0.5).default(0.03),
  seed: z.number().int().min(0).default(42),
  // Train data parallel (torchrun) on a runner with several GPUs; false keeps the job on one.
  dataParallel: z.boolean().default(true),
  // Share of the examples held out to compute a validation loss.
  validationFraction: z.number().min(0).max(0.5).default(0),
  evalEverySteps: z.number().int().positive().nullable().default(null),
  // Stop after this many validation losses in a row without a new best.
  earlyStoppingPatience: z.number().int().positive().nullable().default(null),
  checkpointEverySteps: z.number().int().positive().nullable().default(null),
  // "4bit" loads the base model in NF4 (QLoRA); it needs a CUDA runner with bitsandbytes.
  quantization: z.enum(['none', '4bit']).default('none'),
  // "auto": bfloat16 on a CUDA device that supports it, else float32. "bf16" needs such a device.
  precision: z.enum(['auto', 'bf16', 'fp32']).default('auto'),
}).superRefine((value, context) => {
  if (value.adalora && value.useDora) {
    context.addIssue({ code: 'custom', path: ['useDora'], message: 'adalora and useDora cannot be combined because PEFT\'s AdaLoRA has no DoRA; turn one off' });
  }
  if (value.earlyStoppingPatience !== null && (value.validationFraction === 0 || value.evalEverySteps === null)) {
    context.addIssue({ code: 'custom', path: ['earlyStoppingPatience'], message: 'earlyStoppingPatience needs a validation loss; set validationFraction above 0 and evalEverySteps' });
  }
});
export type Hyperparameters = z.infer<typeof hyperparameters>;

export const capabilities = z.object({
  cpuOnly: z.boolean(),
  gpus: z.array(z.object({ name: z.string(), memoryBytes: z.number().nonnegative(), computeCapability: z.string().optional() })),
  bf16: z.boolean(),
  hostname: z.string(),
  // Memory a CPU runner offers to jobs, in bytes; GPU runners are matched on GPU memory.
  memoryBytes: z.number().nonnegative().optional(),
  freeDiskBytes: z.number().nonnegative().optional(),
  cachedBaseModels: z.array(z.string()).optional(),
});
export type Capabilities = z.infer<typeof capabilities>;

const remoteFile = z.object({ path: z.string(), size: z.number().int().nonnegative(), sha256: z.string(), url: z.string().url() });
export type RemoteFile = z.infer<typeof remoteFile>;

export const jobKinds = ['finetune', 'evaluate', 'export'] as const;

/** The claimed job sent to a runner: every input it needs, as presigned URLs. */
export const claimedJob = z.object({
  jobId: z.string().uuid(),
  kind: z.enum(jobKinds),
  attempt: z.number().int().positive(),
  leaseToken: z.string(),
  leaseSeconds: z.number().int().positive(),
  baseModel: z.object({ id: z.string(), files: z.array(remoteFile) }),
  finetune: z.object({
    dataset: remoteFile,
    hyperparameters,
    // The last checkpoint of an earlier attempt: training resumes after its step.
    checkpoint: z.object({ step: z.number().int().nonnegative(), files: z.array(remoteFile) }).nullable().optional(),
  }).optional(),
  evaluate: z.object({
    task: z.object({
      id: z.string(), version: z.number().int(), file: remoteFile, limit: z.number().int().positive().nullable(),
      numFewshot: z.number().int().nonnegative().default(0), seed: z.number().int().nonnegative().default(1234),
    }),
    subjects: z.array(z.object({ key: z.string(), adapterFiles: z.array(remoteFile).optional() })),
  }).optional(),
  // An ONNX edge export of one adapter version, or of the base model alone when
  // adapterVersionId is null (the playground's shared-base graph; see docs/edge.md).
  export: z.object({
    adapterVersionId: z.number().int().positive().nullable(),
    adapterFiles: z.array(remoteFile),
    // The items of the adapter's domain task that the edge report scores; null skips scoring.
    task: z.object({ id: z.string(), file: remoteFile, limit: z.number().int().positive().max(200) }).nullable(),
    loraInputs: z.boolean(),
    // False exports only the lora-inputs graph, with no merged graphs and no edge report.
    merged: z.boolean().default(true),
    maxRank: z.number().int().min(1).max(4096),
    generateTokens: z.number().int().min(1).max(512),
  }).optional(),
});
export type ClaimedJob = z.infer<typeof claimedJob>;

export const lease = z.object({ jobId: z.string().uuid(), leaseToken: z.string() });

export const reportEvents = lease.extend({ events: z.array(workerEvent).max(500) });

export const outputFile = z.object({
  path: z.string().regex(/^[A-Za-z0-9._-]+$/, 'output file names are plain names such as adapter_model.safetensors'),
  size: z.number().int().nonnegative().max(20 * 1024 ** 3),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

// Checkpoint files keep their folder layout (PEFT may write the adapter under a subfolder).
export const checkpointFile = outputFile.extend({
  path: z.string().max(200).regex(/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/, 'checkpoint file paths use letters, digits, dot, dash, underscore and /'),
});

export const saveCheckpoint = lease.extend({ step: z.number().int().positive(), files: z.array(checkpointFile).min(1).max(64) });

/** One graph variant of an edge bundle as the runner measured it with onnxruntime-node. */
export const edgeVariantReport = z.object({
  name: z.string().max(50),
  file: z.string().max(200),
  sizeBytes: z.number().int().nonnegative(),
  // Over every reference prompt's next-token logits, against PyTorch float32.
  maxAbsLogitDiff: z.number().nonnegative(),
  top1Agreement: z.number().min(0).max(1),
  // Greedy decoding with the KV cache after the first reference prompt.
  msPerToken: z.number().nonnegative(),
  // Peak resident set size of the process that loaded and ran this variant alone.
  peakMemoryBytes: z.number().int().nonnegative(),
  // Accuracy on the task items (log-likelihood of each choice), null without a task.
  taskAccuracy: z.number().min(0).max(1).nullable(),
});

export const edgeReport = z.object({
  runtime: z.string().max(100),
  prompts: z.number().int().nonnegative(),
  generateTokens: z.number().int().nonnegative(),
  task: z.object({ id: z.string(), items: z.number().int().nonnegative() }).nullable(),
  pytorch: z.object({ msPerToken: z.number().nonnegative(), taskAccuracy: z.number().min(0).max(1).nullable() }),
  variants: z.array(edgeVariantReport).max(8),
  // Items where int8 and fp32 pick the same choice, over the task items; null without a task.
  int8TaskAgreement: z.number().min(0).max(1).nullable(),
});
export type EdgeReport = z.infer<typeof edgeReport>;

export const completeJob = lease.extend({
  outcome: z.discriminatedUnion('status', [
    z.object({
      status: z.literal('succeeded'), summary: z.record(z.string(), z.unknown()), files: z.array(outputFile).max(32).optional(),
      results: z.array(evaluationResult).optional(), edgeReport: edgeReport.optional(), hardware: z.string(),
    }),
    z.object({ status: z.literal('failed'), reason: z.enum(failureReasons), message: z.string().max(4000), logTail: z.array(z.string()).max(100) }),
    z.object({ status: z.literal('cancelled'), message: z.string().max(4000) }),
  ]),
});
export type CompleteJob = z.infer<typeof completeJob>;
