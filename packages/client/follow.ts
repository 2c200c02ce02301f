import type { Client } from './index';

const ENDED = new Set(['succeeded', 'failed', 'cancelled']);

/** Update reported by `followJob`: a state change, a training step, or an event the worker logged. */
export type JobUpdate =
  | { kind: 'state'; state: string }
  // `unit` is 'items' for evaluations, which count scored items and have no loss.
  | { kind: 'progress'; step: number; totalSteps: number | null; unit: 'steps' | 'items'; loss: number | null; tokensPerSecond: number | null }
  | { kind: 'event'; type: string; attempt: number; payload: unknown; createdAt: string };

export interface FollowOptions {
  onEvent?: (update: JobUpdate) => void;
  // Wait between polls in milliseconds (2,000).
  intervalMs?: number;
  signal?: AbortSignal;
}

/**
 * Polls a fine-tune or evaluation job until it succeeds, fails or is cancelled, and resolves
 * with its final state. Each state change, new training step and new event is passed to
 * `onEvent` once. Polls go through the client, so failed polls are retried like any query.
 */
export async function followJob(client: Client, jobId: string, options: FollowOptions = {}) {
  const seen = new Set<string>();
  let lastState = '';
  let lastStep = -1;
  for (;;) {
    options.signal?.throwIfAborted();
    const job = await client.finetune.get.query({ jobId });

    if (job.state !== lastState) {
      lastState = job.state;
      options.onEvent?.({ kind: 'state', state: job.state });
    }
    const progress = job.progress as { step?: number; totalSteps?: number; unit?: string; loss?: number; tokensPerSecond?: number } | null;
    if (typeof progress?.step === 'number' && progress.step !== lastStep) {
      lastStep = progress.step;
      options.onEvent?.({ kind: 'progress', step: progress.step, totalSteps: progress.totalSteps ?? null, unit: progress.unit === 'items' ? 'items' : 'steps', loss: progress.loss ?? null, tokensPerSecond: progress.tokensPerSecond ?? null });
    }
    for (const event of job.events) {
      const createdAt = new Date(event.createdAt).toISOString();
      const key = `${event.attempt}:${event.type}:${createdAt}:${JSON.stringify(event.payload)}`;
      if (seen.has(key)) continue;
      seen.add(key);
      options.onEvent?.({ kind: 'event', type: event.type, attempt: event.attempt, payload: event.payload, createdAt });
    }

    if (ENDED.has(job.state)) return job;
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 2000));
  }
}
