import { describe, expect, it } from 'vitest';
import { uploadDataset } from '../../scripts/seed-lib';
import { appUrl, TINY_BASE_ID } from '../setup/env';
import { adminClient, newUser, startRunner, tinyHyperparameters, waitFor, waitForJob } from '../setup/helpers';

/** Reads one sample's value from Prometheus text, or null when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | null {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`))) continue;
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return null;
}

describe('metrics', () => {
  it('reports jobs by state, queue wait and runner counters', async () => {
    const user = await newUser('metrics');
    const dataset = await uploadDataset(user.client, '.test-data/demo/pubmedqa-train.jsonl', 'pubmedqa-train', TINY_BASE_ID);
    // Scrapers authenticate like runners (or with METRICS_TOKEN).
    const { token } = await (await adminClient()).runner.createToken.mutate({ name: 'metrics-scraper' });
    const scrape = () => fetch(`${appUrl}/api/metrics`, { headers: { authorization: `Bearer ${token}` } });
    const before = await (await scrape()).text();
    const succeededBefore = sample(before, 'adapters_jobs', { kind: 'finetune', state: 'succeeded' }) ?? 0;

    const { jobId } = await user.client.finetune.create.mutate({
      datasetVersionId: dataset.datasetVersionId, baseModelId: TINY_BASE_ID, adapterName: 'measured', domain: null, description: '', evalLimit: null,
      hyperparameters: tinyHyperparameters({ maxSteps: 2 }),
    });
    const port = 39_000 + Math.floor(Math.random() * 1000);
    const runner = await startRunner('measured-runner', { RUNNER_METRICS_PORT: String(port) });
    try {
      await waitForJob(user.client, jobId, ['succeeded', 'failed', 'cancelled']);
      const runnerText = await waitFor('the runner to count its job', async () => {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        return (sample(text, 'adapters_runner_jobs_total', { outcome: 'succeeded' }) ?? 0) >= 1 ? text : null;
      });
      expect(sample(runnerText, 'adapters_runner_claims_total')).toBeGreaterThanOrEqual(1);
      // The runner may already hold another test's queued job, so the gauge is 0 or 1.
      expect([0, 1]).toContain(sample(runnerText, 'adapters_runner_running_jobs'));
    } finally {
      await runner.stop();
    }

    const response = await scrape();
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    expect(text).toMatch(/^# HELP adapters_jobs /m);
    expect(sample(text, 'adapters_jobs_backlog')).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'adapters_jobs', { kind: 'finetune', state: 'succeeded' })).toBeGreaterThanOrEqual(succeededBefore + 1);
    expect(sample(text, 'adapters_job_queue_wait_seconds_count', { kind: 'finetune' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'adapters_job_queue_wait_seconds', { kind: 'finetune', quantile: '0.95' })).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'adapters_runner_heartbeat_lag_seconds', { runner: 'measured-runner' })).toBeGreaterThanOrEqual(0);
  });
});
