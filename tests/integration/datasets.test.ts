import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { announce, describeFile, putFiles } from '../../cli/upload';
import type { Client } from '../../lib/trpc-client';
import { finalizeUpload } from '../../lib/upload-protocol';
import { TINY_BASE_ID } from '../setup/env';
import { newUser, runCli, startRunner, tinyHyperparameters, waitForJob } from '../setup/helpers';

const FIXTURES = 'tests/fixtures/datasets';
const ALL_CLEANING = {
  normalizeUnicode: true, normalizeWhitespace: true, maskEmails: true, maskPhones: true, maskIds: true,
  dropEmpty: true, dropOverLong: true, dedupeExact: true, dedupeNear: true,
};

async function upload(client: Client, fixture: string, name: string, extra: { mapping?: Record<string, string>; maxSeqLength?: number } = {}) {
  const file = path.join(FIXTURES, fixture);
  const described = await describeFile(file, fixture);
  const begun = await client.datasets.beginUpload.mutate({ file: announce(described) });
  await putFiles([described], begun.files);
  return finalizeUpload(() => client.datasets.create.mutate({ uploadId: begun.uploadId, name, baseModelId: TINY_BASE_ID, ...extra }));
}

describe('data sets', () => {
  let user: Awaited<ReturnType<typeof newUser>>;
  beforeAll(async () => {
    user = await newUser('data');
  });

  it('stores a mapped CSV as JSONL with the upload in its lineage', async () => {
    const created = await upload(user.client, 'mapping.csv', 'glossary', { mapping: { prompt: 'question', completion: 'answer', system: 'instructions' } });
    expect(created.report.errors).toEqual([]);
    expect(created.report).toMatchObject({ valid: true, fileType: 'csv', format: 'messages', examples: 12 });

    const stored = await user.client.datasets.get.query({ id: created.datasetVersionId });
    expect(stored.lineage).toMatchObject({ upload: { filename: 'mapping.csv', fileType: 'csv', mapping: { prompt: 'question', completion: 'answer', system: 'instructions' } } });
    expect(stored.sha256).not.toBe((stored.lineage as { upload: { sha256: string } }).upload.sha256);
  });

  it('uploads a TSV through the CLI', async () => {
    const result = runCli(['dataset', path.join(FIXTURES, 'mapping.tsv'), '--name', 'numbers', '--base', TINY_BASE_ID,
      '--prompt-column', 'question', '--completion-column', 'answer', '--max-seq', '64', '--json'], user.token);
    expect(result.stderr).toBe('');
    const created = JSON.parse(result.stdout) as { report: { valid: boolean; fileType: string; examples: number; maxSeqLength: number }; lineage: { upload: { mapping: Record<string, string> } } };
    expect(created.report).toMatchObject({ valid: true, fileType: 'tsv', examples: 12, maxSeqLength: 64 });
    expect(created.lineage.upload.mapping).toEqual({ prompt: 'question', completion: 'answer' });
  });

  it('reports a CSV mapping to a missing column on line 1', async () => {
    const created = await upload(user.client, 'mapping.csv', 'glossary-bad', { mapping: { prompt: 'question', completion: 'reply' } });
    expect(created.report.valid).toBe(false);
    expect(created.report.errors).toEqual([{ line: 1, message: 'column "reply" (mapped to completion) is not in the header; the columns are: id, question, answer, instructions' }]);
  });

  it('rejects a mapping for a JSONL file', async () => {
    await expect(upload(user.client, 'bom.jsonl', 'mapped-jsonl', { mapping: { prompt: 'a', completion: 'b' } })).rejects.toThrow('a column mapping applies to CSV and TSV files only');
  });

  it('lists over-long examples with the real tokenizer', async () => {
    const created = await upload(user.client, 'too-long.jsonl', 'long', { maxSeqLength: 64 });
    expect(created.report.valid).toBe(true);
    expect(created.report.lineWarnings).toEqual([{ line: 11, message: 'example is 197 tokens, longer than the maximum sequence length of 64; training cuts it to 64' }]);
    expect(created.report.trainingTokens).toBeGreaterThan(0);
  });

  it('derived mixed version trains with lineage', async () => {
    const source = await upload(user.client, 'cleaning.jsonl', 'support', { maxSeqLength: 100 });
    expect(source.report).toMatchObject({ valid: true, examples: 26, duplicates: 2 });

    const derived = await user.client.datasets.derive.mutate({
      sourceVersionId: source.datasetVersionId, baseModelId: TINY_BASE_ID, maxSeqLength: 100, cleaning: ALL_CLEANING,
      split: { validationFraction: 0.2, seed: 3 }, mix: { source: 'self-instruct-seed', ratio: 0.2, seed: 3 },
    });
    expect(derived.version).toBe(2);
    expect(derived.lineage).toMatchObject({
      derivedFrom: { datasetVersionId: source.datasetVersionId, version: 1 },
      cleaning: {
        before: 26, after: 20,
        counts: { normalizedUnicode: 1, normalizedWhitespace: 2, maskedEmails: 1, maskedPhones: 2, maskedIds: 2, droppedEmpty: 1, droppedOverLong: 1, exactDuplicates: 2, nearDuplicates: 2 },
      },
      split: { validationFraction: 0.2, seed: 3, train: 16, validation: 4, validationSha256: expect.stringMatching(/^[0-9a-f]{64}$/) },
      // 16 training examples at 20% general data: round(16 × 0.2 / 0.8) = 4.
      mix: { source: 'bundled:self-instruct-seed', license: 'Apache-2.0', ratio: 0.2, seed: 3, count: 4, requested: 4 },
    });
    expect(derived.report).toMatchObject({ valid: true, examples: 20, duplicates: 0 });

    const again = await user.client.datasets.derive.mutate({
      sourceVersionId: source.datasetVersionId, baseModelId: TINY_BASE_ID, maxSeqLength: 100, cleaning: ALL_CLEANING,
      split: { validationFraction: 0.2, seed: 3 }, mix: { source: 'self-instruct-seed', ratio: 0.2, seed: 3 },
    });
    const [first, second] = await Promise.all([derived, again].map((d) => user.client.datasets.get.query({ id: d.datasetVersionId })));
    expect(second!.sha256).toBe(first!.sha256);

    const { jobId } = await user.client.finetune.create.mutate({
      datasetVersionId: derived.datasetVersionId, baseModelId: TINY_BASE_ID, adapterName: 'support-mixed', domain: null, description: '', evalLimit: 5,
      hyperparameters: tinyHyperparameters({ maxSteps: 2, maxSeqLength: 100 }),
    });
    const queued = await user.client.finetune.get.query({ jobId });
    expect(queued.dataset).toMatchObject({ id: derived.datasetVersionId, lineage: { mix: { count: 4, ratio: 0.2 } } });

    const runner = await startRunner('datasets');
    try {
      const job = await waitForJob(user.client, jobId, ['succeeded', 'failed', 'cancelled']);
      expect(job.error).toBeNull();
      expect(job.state).toBe('succeeded');
    } finally {
      await runner.stop();
    }
    const page = await user.client.adapters.get.query({ namespace: user.namespace, name: 'support-mixed' });
    expect(page.version.lineage).toMatchObject({ dataset: { version: 2, lineage: { mix: { source: 'bundled:self-instruct-seed', ratio: 0.2, count: 4, seed: 3 } } } });
  });

  it('cleaning drops empty examples of an invalid version', async () => {
    const source = await upload(user.client, 'empty-field.jsonl', 'gaps');
    expect(source.report.valid).toBe(false);
    expect(source.report.errors).toEqual([{ line: 2, message: '`completion` is empty' }]);

    const derived = await user.client.datasets.derive.mutate({
      sourceVersionId: source.datasetVersionId, baseModelId: TINY_BASE_ID, maxSeqLength: 128, cleaning: { dropEmpty: true },
    });
    expect(derived.lineage).toMatchObject({ cleaning: { before: 12, after: 11, counts: { droppedEmpty: 1 } } });
    expect(derived.report).toMatchObject({ valid: true, examples: 11 });
  });

  it('cleaning rejects a version with broken lines', async () => {
    const source = await upload(user.client, 'invalid-json.jsonl', 'broken');
    await expect(user.client.datasets.derive.mutate({
      sourceVersionId: source.datasetVersionId, baseModelId: TINY_BASE_ID, maxSeqLength: 128, cleaning: { dropEmpty: true },
    })).rejects.toThrow('data set broken version 1 has 1 problem that cleaning cannot fix (first: line 7: invalid JSON');
  });

  it('refuses a mix ratio over one half', async () => {
    const source = await upload(user.client, 'messages.jsonl', 'chats');
    await expect(user.client.datasets.derive.mutate({
      sourceVersionId: source.datasetVersionId, baseModelId: TINY_BASE_ID, maxSeqLength: 128, cleaning: {},
      mix: { source: 'self-instruct-seed', ratio: 0.6, seed: 1 },
    })).rejects.toThrow(/0\.5/);
  });

  it('cleans through the CLI with counts', async () => {
    const source = await upload(user.client, 'duplicates.jsonl', 'dupes');
    const result = runCli(['dataset-clean', String(source.datasetVersionId), '--base', TINY_BASE_ID, '--clean', 'duplicates', '--json'], user.token);
    expect(result.stderr).toBe('');
    const derived = JSON.parse(result.stdout) as { report: { examples: number }; lineage: { cleaning: { counts: { exactDuplicates: number } } } };
    expect(derived.lineage.cleaning.counts.exactDuplicates).toBe(2);
    expect(derived.report.examples).toBe(11);
  });
});
