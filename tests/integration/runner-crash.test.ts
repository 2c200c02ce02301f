import { describe, expect, it } from 'vitest';
import { uploadDataset } from '../../scripts/seed-lib';
import { TINY_BASE_ID } from '../setup/env';
import type { Client } from '../../lib/trpc-client';
import { newUser, shortDataset, startRunner, waitFor, waitForJob, waitForRunnerLog, tinyHyperparameters } from '../setup/helpers';

// Steps of the jobs a runner is killed or drained in. The test interrupts them within
// milliseconds of the runner's "checkpoint uploaded" line. At about 7 ms a step on a quiet CPU,
// 300 steps leave about two seconds to spare, and they still finish soon under load.
const LONG_STEPS = 300;

type Job = Awaited<ReturnType<Client['finetune']['get']['query']>>;

function resumedStep(job: Job): number | null {
  const line = job.events.find((e) => e.type === 'log' && /^resuming from the checkpoint/.test(String(e.payload.message)));
  const match = /after step (\d+)$/.exec(String(line?.payload.message ?? ''));
  return match ? Number(match[1]) : null;
}

describe('runner crash', () => {
  it('resumes a killed runner job from its checkpoint on another runner, once', async () => {
    const user = await newUser('crash');
    const dataset = await shortDataset(user.client, 'short');
    const { jobId } = await user.client.finetune.create.mutate({
      datasetVersionId: dataset.datasetVersionId, baseModelId: TINY_BASE_ID, adapterName: 'survivor', domain: null, description: '', evalLimit: null,
      hyperparameters: tinyHyperparameters({ maxSteps: LONG_STEPS, epochs: 100 }),
    });

    const first = await startRunner('doomed', { RUNNER_CHECKPOINT_STEPS: '10' });
    try {
      await waitForRunnerLog(first, 'checkpoint uploaded');
    } finally {
      // SIGKILL the runner and its worker together, as when a machine dies.
      await first.stop();
    }
    expect((await user.client.finetune.get.query({ jobId })).state).toBe('running');

    // The rescuer spawns a fresh worker per job, so the spawn mode runs a whole fine-tune too.
    const second = await startRunner('rescuer', { RUNNER_WORKER_MODE: 'spawn' });
    try {
      const job = await waitForJob(user.client, jobId, ['succeeded', 'failed', 'cancelled']);
      expect(job.state).toBe('succeeded');
      expect(job.attempts).toBe(2);
      expect(job.events.some((e) => e.type === 'state' && e.payload.reason === 'lease expired')).toBe(true);
      // The second attempt starts after the checkpoint's step instead of at step 1.
      const step = resumedStep(job);
      expect(step).toBeGreaterThanOrEqual(10);
      const secondAttempt = job.lossCurve.filter((point) => point.attempt === 2);
      expect(secondAttempt[0]!.step).toBe(step! + 1);
      expect((job.summary as { steps: number }).steps).toBe(LONG_STEPS);
    } finally {
      await second.stop();
    }

    const page = await user.client.adapters.get.query({ namespace: user.namespace, name: 'survivor' });
    expect(page.versions).toHaveLength(1);
    expect(page.versions[0]!.sourceJobId).toBe(jobId);
  });
});

describe('draining', () => {
  it('checkpoints on SIGTERM, gives the job back and lets another runner finish it', async () => {
    const user = await newUser('drain');
    const dataset = await shortDataset(user.client, 'short');
    const { jobId } = await user.client.finetune.create.mutate({
      datasetVersionId: dataset.datasetVersionId, baseModelId: TINY_BASE_ID, adapterName: 'drained', domain: null, description: '', evalLimit: null,
      hyperparameters: tinyHyperparameters({ maxSteps: LONG_STEPS, epochs: 100 }),
    });

    const first = await startRunner('draining', { RUNNER_CHECKPOINT_STEPS: '3' });
    try {
      await waitForRunnerLog(first, 'checkpoint uploaded');
      const exited = new Promise<number | null>((resolve) => first.child.once('exit', (code) => resolve(code)));
      process.kill(first.child.pid!, 'SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      await first.stop();
    }

    const released = await user.client.finetune.get.query({ jobId });
    expect(released.state).toBe('queued');
    expect(released.events.some((e) => e.type === 'checkpoint-saved')).toBe(true);
    expect(released.events.some((e) => e.type === 'state' && /drained/.test(String(e.payload.reason)))).toBe(true);

    const second = await startRunner('after-drain');
    try {
      const job = await waitForJob(user.client, jobId, ['succeeded', 'failed', 'cancelled']);
      expect(job.state).toBe('succeeded');
      expect(resumedStep(job)).toBeGreaterThanOrEqual(3);
      expect((job.summary as { steps: number }).steps).toBe(LONG_STEPS);
    } finally {
      await second.stop();
    }
    const page = await user.client.adapters.get.query({ namespace: user.namespace, name: 'drained' });
    expect(page.versions).toHaveLength(1);
  });
});

describe('cancellation', () => {
  it('stops a running job at the next heartbeat and publishes nothing', async () => {
    const user = await newUser('cancel');
    // 200 short examples for 100 epochs: 10,000 steps, far more than the test waits for.
    const dataset = await shortDataset(user.client, 'short', 200);
    const { jobId } = await user.client.finetune.create.mutate({
      datasetVersionId: dataset.datasetVersionId, baseModelId: TINY_BASE_ID, adapterName: 'cancelled', domain: null, description: '', evalLimit: null,
      hyperparameters: tinyHyperparameters({ epochs: 100, maxSteps: null }),
    });

    const runner = await startRunner('canceller');
    try {
      await waitFor('the first training step', async () => (await user.client.finetune.get.query({ jobId })).lossCurve.length > 0);
      expect(await user.client.finetune.cancel.mutate({ jobId })).toEqual({ state: 'running' });
      const job = await waitForJob(user.client, jobId, ['succeeded', 'failed', 'cancelled'], 60_000);
      expect(job.state).toBe('cancelled');
      expect(job.error?.reason).toBe('cancelled');
      expect(job.events.some((e) => e.type === 'checkpoint')).toBe(true);
    } finally {
      await runner.stop();
    }
    await expect(user.client.adapters.get.query({ namespace: user.namespace, name: 'cancelled' })).rejects.toThrow(/not found/);
  });

  it('cancels a queued job at once', async () => {
    const user = await newUser('queued');
    const dataset = await uploadDataset(user.client, '.test-data/demo/pubmedqa-train.jsonl', 'pubmedqa-train', TINY_BASE_ID);
    const { jobId } = await user.client.finetune.create.mutate({
      datasetVersionId: dataset.datasetVersionId, baseModelId: TINY_BASE_ID, adapterName: 'never-run', domain: null, description: '', evalLimit: null,
      hyperparameters: tinyHyperparameters(),
    });
    expect(await user.client.finetune.cancel.mutate({ jobId })).toEqual({ state: 'cancelled' });
    expect((await user.client.finetune.get.query({ jobId })).state).toBe('cancelled');
    await expect(user.client.finetune.cancel.mutate({ jobId })).rejects.toThrow(/already ended \(cancelled\)/);
  });
});

describe('capability matching', () => {
  it('leaves a job to a runner with enough memory', async () => {
    const user = await newUser('fit');
    const dataset = await uploadDataset(user.client, '.test-data/demo/pubmedqa-train.jsonl', 'pubmedqa-train', TINY_BASE_ID);
    const { jobId } = await user.client.finetune.create.mutate({
      datasetVersionId: dataset.datasetVersionId, baseModelId: TINY_BASE_ID, adapterName: 'fitted', domain: null, description: '', evalLimit: null,
      hyperparameters: tinyHyperparameters({ maxSteps: 1 }),
    });
    const requirements = (await user.client.finetune.get.query({ jobId })).params.requirements as { memoryBytes: number };
    expect(requirements.memoryBytes).toBeGreaterThan(1e9);

    // 0.5 GB is less than any training job's estimate, so this runner claims nothing.
    const small = await startRunner('too-small', { RUNNER_MEMORY_GB: '0.5' });
    try {
      await waitFor('the small runner to poll a few times', async () => small.output.join('').includes('runner registered'));
      await new Promise((resolve) => setTimeout(resolve, 3000));
      expect((await user.client.finetune.get.query({ jobId })).state).toBe('queued');
    } finally {
      await small.stop();
    }

    const large = await startRunner('large-enough');
    try {
      expect((await waitForJob(user.client, jobId, ['succeeded', 'failed', 'cancelled'])).state).toBe('succeeded');
    } finally {
      await large.stop();
    }
  });
});

describe('data parallel', () => {
  it('trains on two torchrun processes, and cancelling keeps the checkpoint', async () => {
    const user = await newUser('parallel');
    const dataset = await shortDataset(user.client, 'short', 200);
    const finished = await user.client.finetune.create.mutate({
      datasetVersionId: dataset.datasetVersionId, baseModelId: TINY_BASE_ID, adapterName: 'two-processes', domain: null, description: '', evalLimit: null,
      hyperparameters: tinyHyperparameters({ maxSteps: 4, batchSize: 2, gradientAccumulation: 2 }),
    });
    // A CPU runner offers two processes here; on a GPU machine the default is one per GPU.
    const runner = await startRunner('parallel', { RUNNER_DATA_PARALLEL: '2' });
    try {
      const job = await waitForJob(user.client, finished.jobId, ['succeeded', 'failed', 'cancelled']);
      expect(job.state, JSON.stringify(job.error)).toBe('succeeded');
      expect((job.summary as { processes: number }).processes).toBe(2);
      expect(job.events.some((e) => e.type === 'log' && String(e.payload.message).startsWith('data parallel over 2 processes'))).toBe(true);
      expect(job.lossCurve.map((point) => point.step)).toEqual([1, 2, 3, 4]);

      const cancelled = await user.client.finetune.create.mutate({
        datasetVersionId: dataset.datasetVersionId, baseModelId: TINY_BASE_ID, adapterName: 'two-cancelled', domain: null, description: '', evalLimit: null,
        hyperparameters: tinyHyperparameters({ epochs: 100, maxSteps: null }),
      });
      await waitFor('the first data-parallel step', async () => (await user.client.finetune.get.query({ jobId: cancelled.jobId })).lossCurve.length > 0);
      await user.client.finetune.cancel.mutate({ jobId: cancelled.jobId });
      const stopped = await waitForJob(user.client, cancelled.jobId, ['succeeded', 'failed', 'cancelled'], 60_000);
      expect(stopped.state).toBe('cancelled');
      expect(stopped.events.some((e) => e.type === 'checkpoint')).toBe(true);
    } finally {
      await runner.stop();
    }
    const page = await user.client.adapters.get.query({ namespace: user.namespace, name: 'two-processes' });
    expect(page.versions).toHaveLength(1);
  });
});
