import { describe, expect, it } from 'vitest';
import { appUrl, TINY_BASE_ID } from '../setup/env';
import { descendants, newUser, shortDataset, startRunner, tinyHyperparameters, waitForJob, waitForRunnerLog } from '../setup/helpers';

describe('resume', () => {
  it('continues a cancelled fine-tune from its checkpoint', async () => {
    const user = await newUser('resume');
    const dataset = await shortDataset(user.client, 'short');
    const { jobId } = await user.client.finetune.create.mutate({
      datasetVersionId: dataset.datasetVersionId, baseModelId: TINY_BASE_ID, adapterName: 'resumed', domain: null, description: '', evalLimit: null,
      hyperparameters: tinyHyperparameters({ maxSteps: 300, epochs: 100 }),
    });

    const runner = await startRunner('resumer', { RUNNER_CHECKPOINT_STEPS: '50' });
    try {
      // The cancel reaches the runner at its next heartbeat, up to 2 s on, when a fast CPU
      // could have trained hundreds of steps. Freezing the worker (not the runner, which must
      // keep its heartbeat) until the runner has the cancel makes the stop step independent
      // of the machine's speed.
      await waitForRunnerLog(runner, 'checkpoint uploaded');
      const worker = await descendants(runner.child.pid!);
      const signal = (name: NodeJS.Signals) => worker.forEach((pid) => process.kill(pid, name));
      signal('SIGSTOP');
      try {
        expect(await user.client.finetune.cancel.mutate({ jobId })).toEqual({ state: 'running' });
        await waitForRunnerLog(runner, 'cancellation requested; stopping the worker');
      } finally {
        signal('SIGCONT');
      }
      const cancelled = await waitForJob(user.client, jobId, ['succeeded', 'failed', 'cancelled'], 60_000);
      expect(cancelled.state).toBe('cancelled');
      // The worker's checkpoint at the step boundary where it stopped is uploaded before the job ends.
      const lastStep = cancelled.lossCurve.at(-1)!.step;
      expect(cancelled.checkpoint).toEqual({ step: lastStep, attempt: 1 });
      expect(cancelled.timeline.map((entry) => entry.state ?? entry.type)).toEqual(expect.arrayContaining(['validating', 'queued', 'running', 'started', 'checkpoint-saved', 'cancel-requested', 'cancelled']));

      expect(await user.client.finetune.resume.mutate({ jobId })).toEqual({ state: 'queued', checkpointStep: lastStep });
      await expect(user.client.finetune.resume.mutate({ jobId })).rejects.toThrow(/is (queued|running); only a cancelled or failed fine-tune can resume/);

      const job = await waitForJob(user.client, jobId, ['succeeded', 'failed', 'cancelled']);
      expect(job.state, JSON.stringify(job.error)).toBe('succeeded');
      expect(job.attempts).toBe(2);
      const secondAttempt = job.lossCurve.filter((point) => point.attempt === 2);
      expect(secondAttempt[0]!.step).toBe(lastStep + 1);
      expect((job.summary as { steps: number }).steps).toBe(300);
      expect(job.events.some((e) => e.type === 'log' && e.payload.message === `resuming from the checkpoint of attempt 1 after step ${lastStep}`)).toBe(true);

      const page = await user.client.adapters.get.query({ namespace: user.namespace, name: 'resumed' });
      expect(page.versions).toHaveLength(1);
      expect(page.version.lineage).toMatchObject({ jobId, attempt: 2, steps: 300, validationLoss: null, dataset: { sha256: expect.stringMatching(/^[0-9a-f]{64}$/) } });

      const notices = await user.client.notifications.list.query();
      expect(notices.items.filter((item) => item.jobId === jobId).map((item) => item.state)).toEqual(['succeeded', 'cancelled']);
      expect(notices.items[0]!.message).toBe(`Fine-tune resumed succeeded: published ${user.namespace}/resumed v1`);

      const download = await fetch(`${appUrl}/api/jobs/${jobId}/logs`, { headers: { authorization: `Bearer ${user.token}` } });
      expect(download.status).toBe(200);
      expect(download.headers.get('content-disposition')).toBe(`attachment; filename="job-${jobId}.log"`);
      const text = await download.text();
      expect(text).toContain(`[attempt 2] log info: resuming from the checkpoint of attempt 1 after step ${lastStep}`);
      expect(text.split('\n').filter((line) => line.includes(' progress ')).length).toBe(job.lossCurve.length);
    } finally {
      await runner.stop();
    }
    await expect(user.client.finetune.resume.mutate({ jobId })).rejects.toThrow(/is succeeded; only a cancelled or failed fine-tune can resume/);
  });

  it('rejects resuming without a checkpoint', async () => {
    const user = await newUser('no-checkpoint');
    const dataset = await shortDataset(user.client, 'short');
    const { jobId } = await user.client.finetune.create.mutate({
      datasetVersionId: dataset.datasetVersionId, baseModelId: TINY_BASE_ID, adapterName: 'unstarted', domain: null, description: '', evalLimit: null,
      hyperparameters: tinyHyperparameters(),
    });
    await user.client.finetune.cancel.mutate({ jobId });
    await expect(user.client.finetune.resume.mutate({ jobId })).rejects.toThrow(/saved no checkpoint before it ended.*"Clone and edit"/);

    const stranger = await newUser('log-reader');
    const denied = await fetch(`${appUrl}/api/jobs/${jobId}/logs`, { headers: { authorization: `Bearer ${stranger.token}` } });
    expect(denied.status).toBe(404);
    const anonymous = await fetch(`${appUrl}/api/jobs/${jobId}/logs`);
    expect(anonymous.status).toBe(401);
  });
});
