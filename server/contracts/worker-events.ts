import { z } from 'zod';

/**
 * Events the Python worker prints on stdout, one JSON object per line. The pydantic
 * models in gpu-runner/worker/events.py mirror this schema, and both sides validate
 * tests/fixtures/worker-events.jsonl.
 */
const base = { time: z.number() };

export const failureReasons = ['out_of_memory', 'data_error', 'cuda_error', 'crash', 'timeout', 'cancelled'] as const;
export type FailureReason = (typeof failureReasons)[number];

export const workerEvent = z.discriminatedUnion('type', [
  z.object({
    ...base,
    type: z.literal('started'),
    device: z.enum(['cuda', 'cpu']),
    dtype: z.string(),
    hardware: z.string(),
    versions: z.record(z.string(), z.string()),
  }),
  // A fine-tune counts optimizer steps and reports its loss; an evaluation counts scored
  // items (`unit: 'items'`, across all subjects) and has no loss.
  z.object({
    ...base,
    type: z.literal('progress'),
    step: z.number().int().nonnegative(),
    totalSteps: z.number().int().nonnegative(),
    unit: z.enum(['steps', 'items']).optional(),
    subject: z.string().optional(),
    epoch: z.number().nonnegative().optional(),
    loss: z.number().optional(),
    learningRate: z.number().optional(),
    tokensPerSecond: z.number().nonnegative().optional(),
    // Added after the first version; older workers leave them out.
    etaSeconds: z.number().nonnegative().optional(),
    cpuMemoryBytes: z.number().int().nonnegative().optional(),
    // Bytes the CUDA allocator holds; absent on the CPU.
    gpuMemoryBytes: z.number().int().nonnegative().optional(),
  }).refine(
    (event) => event.unit === 'items' || (event.epoch !== undefined && event.loss !== undefined && event.learningRate !== undefined && event.tokensPerSecond !== undefined),
    { message: 'a progress event in steps needs epoch, loss, learningRate and tokensPerSecond' },
  ),
  z.object({ ...base, type: z.literal('checkpoint'), step: z.number().int().nonnegative(), path: z.string() }),
  z.object({
    ...base,
    type: z.literal('metric'),
    name: z.string(),
    value: z.number(),
    subject: z.string().optional(),
    task: z.string().optional(),
    correct: z.number().int().nonnegative().optional(),
    total: z.number().int().nonnegative().optional(),
    stderr: z.number().nonnegative().optional(),
  }),
  z.object({ ...base, type: z.literal('artifact'), path: z.string(), role: z.enum(['adapter', 'checkpoint', 'evaluation']) }),
  z.object({ ...base, type: z.literal('log'), level: z.enum(['debug', 'info', 'warning', 'error']), message: z.string() }),
  z.object({ ...base, type: z.literal('finished'), summary: z.record(z.string(), z.unknown()) }),
  z.object({ ...base, type: z.literal('failed'), reason: z.enum(failureReasons), message: z.string() }),
]);

export type WorkerEvent = z.infer<typeof workerEvent>;

export const evaluationResult = z.object({
  subject: z.string(),
  task: z.string(),
  correct: z.number().int().nonnegative(),
  total: z.number().int().positive(),
  accuracy: z.number().min(0).max(1),
  stderr: z.number().nonnegative(),
  // Accuracy when each choice's log-likelihood is divided by its length in characters.
  accNorm: z.number().min(0).max(1),
  accNormStderr: z.number().nonnegative(),
  // Present only for classification tasks, whose items all offer the same choices.
  macroF1: z.number().min(0).max(1).optional(),
  harnessVersion: z.string().min(1),
  numFewshot: z.number().int().nonnegative(),
  seed: z.number().int().nonnegative(),
  // sha256 of the harness task configuration and its data files, computed by the worker.
  configHash: z.string().regex(/^[0-9a-f]{64}$/),
  durationSeconds: z.number().nonnegative(),
});
export type EvaluationResult = z.infer<typeof evaluationResult>;
