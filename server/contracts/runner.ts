import { z } from 'zod';
import { evaluationResult, failureReasons, workerEvent } from './worker-events';

/** Messages between the runner and the app, shared by the tRPC router and gpu-runner. */

export const hyperparameters = z.object({
  rank: z.number().int().min(1).max(512),
  alpha: z.number().positive().max(4096),
  dropout: z.number().min(0).max(0.9).default(0.05),
  targetModules: z.union([z.literal('all-linear'), z.array(z.string().min(1)).min(1)]).default('all-linear'),
  learningRate: z.number().positive().max(1),
  epochs: z.number().positive().max(100),
  maxSteps: z.number().int().positive().nullable().default(null),
  batchSize: z.number().int().min(1).max(512),
  gradientAccumulation: z.number().int().min(1).max(512).default(1),
  maxSeqLength: z.number().int().min(16).max(32768),
  warmupRatio: z.number().min(0).max(0.5).default(0.03),
  seed: z.number().int().min(0).default(42),
  // Train data parallel (torchrun) on a runner with several GPUs; false keeps the job on one.
  dataParallel: z.boolean().default(true),
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

/** The claimed job sent to a runner: every input it needs, as presigned URLs. */
export const claimedJob = z.object({
  jobId: z.string().uuid(),
  kind: z.enum(['finetune', 'evaluate']),
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

export const completeJob = lease.extend({
  outcome: z.discriminatedUnion('status', [
    z.object({ status: z.literal('succeeded'), summary: z.record(z.string(), z.unknown()), files: z.array(outputFile).max(32).optional(), results: z.array(evaluationResult).optional(), hardware: z.string() }),
    z.object({ status: z.literal('failed'), reason: z.enum(failureReasons), message: z.string().max(4000), logTail: z.array(z.string()).max(100) }),
    z.object({ status: z.literal('cancelled'), message: z.string().max(4000) }),
  ]),
});
export type CompleteJob = z.infer<typeof completeJob>;
