import { describe, expect, it } from 'vitest';
import { uploadDataset } from '../../scripts/seed-lib';
import { TINY_BASE_ID } from '../setup/env';
import { newUser, startRunner, waitFor, waitForJob, tinyHyperparameters } from '../setup/helpers';

describe('runner crash', () => {
  it('requeues a killed runner job once', async () => {
    const user = await newUser('crash');
    const dataset = await uploadDataset(user.client, '.test-data/demo/pubmedqa-train.jsonl', 'pubmedqa-train', TINY_BASE_ID);
    const { jobId } = await user.client.finetune.create.mutate({
      datasetVersionId: dataset.datasetVersionId, baseModelId: TINY_BASE_ID, adapterName: 'survivor', domain: null, description: '', evalLimit: null,
      hyperparameters: tinyHyperparameters({ maxSteps: 4 }),
    });

    const first = await startRunner('doomed');
    await waitFor('the first runner to claim the job', async () => (await user.client.finetune.get.query({ jobId })).state === 'running');
    // SIGKILL the runner and its worker together, as when a machine dies.
    await first.stop();
    expect((await user.client.finetune.get.query({ jobId })).state).toBe('running');

    const second = await startRunner('rescuer');
    try {
      const job = await waitForJob(user.client, jobId, ['succeeded', 'failed', 'cancelled']);
      expect(job.state).toBe('succeeded');
      expect(job.attempts).toBe(2);
      expect(job.events.some((e) => e.type === 'state' && e.payload.reason === 'lease expired')).toBe(true);
    } finally {
      await second.stop();
    }

    const page = await user.client.adapters.get.query({ namespace: user.namespace, name: 'survivor' });
    expect(page.versions).toHaveLength(1);
    expect(page.versions[0]!.sourceJobId).toBe(jobId);
  });
});

describe('cancellation', () => {
  it('stops a running job at the next heartbeat and publishes nothing', async () => {
    const user = await newUser('cancel');
    const dataset = await uploadDataset(user.client, '.test-data/demo/pubmedqa-train.jsonl', 'pubmedqa-train', TINY_BASE_ID);
    const { jobId } = await user.client.finetune.create.mutate({
      datasetVersionId: dataset.datasetVersionId, baseModelId: TINY_BASE_ID, adapterName: 'cancelled', domain: null, description: '', evalLimit: null,
      hyperparameters: tinyHyperparameters({ epochs: 50, maxSteps: null }),
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
