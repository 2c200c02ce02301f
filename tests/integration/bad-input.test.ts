import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { blobKey, headObject } from '../../server/storage';
import { announce, describeFolder, putFiles } from '../../cli/upload';
import { finalizeUpload } from '../../lib/upload-protocol';
import { toJsonl } from '../../scripts/demo-data';
import { uploadDataset } from '../../scripts/seed-lib';
import { testEnv, TINY_BASE_ID } from '../setup/env';
import { newUser, runCli, writeAdapterFolder, tinyHyperparameters } from '../setup/helpers';

async function publish(client: Awaited<ReturnType<typeof newUser>>['client'], dir: string, name: string) {
  const files = await describeFolder(dir);
  const begun = await client.adapters.beginUpload.mutate({ files: files.map(announce) });
  await putFiles(files, begun.files);
  return finalizeUpload(() => client.adapters.publish.mutate({ uploadId: begun.uploadId, name, baseModelId: TINY_BASE_ID }));
}

describe('bad input', () => {
  let user: Awaited<ReturnType<typeof newUser>>;
  beforeAll(async () => {
    user = await newUser('bad');
  });

  it('rejects a JSONL file with one malformed line before queueing, naming the line', async () => {
    const rows = Array.from({ length: 15 }, (_, i) => ({ prompt: `q${i}`, completion: `a${i}` }));
    const text = toJsonl(rows).split('\n');
    text[8] = '{"prompt": "missing the end", "completion": ';
    const file = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'bad-')), 'broken.jsonl');
    await fs.writeFile(file, text.join('\n'));

    const dataset = await uploadDataset(user.client, file, 'broken', TINY_BASE_ID);
    expect(dataset.report.valid).toBe(false);
    expect(dataset.report.errors).toEqual([{ line: 9, message: expect.stringMatching(/^invalid JSON/) }]);

    await expect(user.client.finetune.create.mutate({
      datasetVersionId: dataset.datasetVersionId, baseModelId: TINY_BASE_ID, adapterName: 'never', domain: null, description: '', evalLimit: null,
      hyperparameters: tinyHyperparameters({ maxSeqLength: 64 }),
    })).rejects.toThrow(/failed validation/);
    const jobs = await user.client.finetune.list.query();
    expect(jobs.filter((j) => j.state === 'queued' || j.state === 'running')).toEqual([]);
  });

  it('rejects an adapter whose tensor shapes disagree with its config, naming the tensor', async () => {
    const dir = await writeAdapterFolder({
      rank: 4,
      mutate: (tensors) => {
        const name = Object.keys(tensors).find((n) => n.endsWith('layers.0.self_attn.q_proj.lora_A.weight'))!;
        tensors[name] = { shape: [8, tensors[name]!.shape[1]!] };
      },
    });
    await expect(publish(user.client, dir, 'wrong-rank')).rejects.toThrow(/tensor base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight: shape \[8, \d+\], expected \[4, \d+\]/);
    await expect(user.client.adapters.get.query({ namespace: user.namespace, name: 'wrong-rank' })).rejects.toThrow(/not found/);
  });

  it('rejects a pickle checkpoint with conversion advice', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pickle-'));
    await fs.writeFile(path.join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj'] }));
    await fs.writeFile(path.join(dir, 'adapter_model.bin'), Buffer.from('not really a pickle'));
    const result = runCli(['publish', dir, '--name', 'pickled', '--base', TINY_BASE_ID], user.token);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/adapter_model\.bin is a pickle file.*safetensors/);
  });

  it('rejects a truncated safetensors file and keeps earlier versions', async () => {
    const good = await writeAdapterFolder({ rank: 4 });
    await publish(user.client, good, 'kept');
    const broken = await writeAdapterFolder({ rank: 4 });
    const weights = path.join(broken, 'adapter_model.safetensors');
    await fs.writeFile(weights, (await fs.readFile(weights)).subarray(0, 100));
    await expect(publish(user.client, broken, 'kept')).rejects.toThrow(/adapter_model\.safetensors: header length \d+ runs past the end of the 100-byte file/);
    const page = await user.client.adapters.get.query({ namespace: user.namespace, name: 'kept' });
    expect(page.versions.map((v) => v.version)).toEqual([1]);
  });

  it('rejects a file whose bytes do not match the announced sha256', async () => {
    const begun = await user.client.datasets.beginUpload.mutate({ file: { path: 'x.jsonl', size: 5, sha256: 'a'.repeat(64) } });
    const response = await fetch(begun.files[0]!.parts[0]!.url, { method: 'PUT', body: 'hello' });
    expect(response.ok).toBe(false);
    await expect(user.client.datasets.create.mutate({ uploadId: begun.uploadId, name: 'x', baseModelId: TINY_BASE_ID })).rejects.toThrow(/x\.jsonl was not uploaded/);
  });

  it('answers UNAUTHORIZED without a token and NOT_FOUND for another namespace job', async () => {
    const other = await newUser('other');
    const rows = Array.from({ length: 12 }, (_, i) => ({ prompt: `q${i}`, completion: `a${i}` }));
    const file = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'ok-')), 'ok.jsonl');
    await fs.writeFile(file, toJsonl(rows));
    const dataset = await uploadDataset(user.client, file, 'ok', TINY_BASE_ID);
    await expect(other.client.finetune.create.mutate({
      datasetVersionId: dataset.datasetVersionId, baseModelId: TINY_BASE_ID, adapterName: 'theft', domain: null, description: '', evalLimit: null,
      hyperparameters: tinyHyperparameters({ maxSeqLength: 64 }),
    })).rejects.toThrow(/data set version \d+ not found/);
    const result = runCli(['finetune', 'watch', '00000000-0000-4000-8000-000000000000'], 'amk_invalid');
    expect(result.stderr).toMatch(/API token is unknown, revoked or expired/);
  });
});

describe('abandoned uploads', () => {
  it('deletes expired unfinished uploads and their objects', async () => {
    const user = await newUser('abandon');
    const body = Buffer.from(`never finalized ${Date.now()}\n`);
    const sha256 = createHash('sha256').update(body).digest('hex');
    const begun = await user.client.datasets.beginUpload.mutate({ file: { path: 'left.jsonl', size: body.length, sha256 } });
    expect((await fetch(begun.files[0]!.parts[0]!.url, { method: 'PUT', body })).ok).toBe(true);
    expect(await headObject(blobKey(sha256))).toBe(body.length);

    const pool = new pg.Pool({ connectionString: testEnv.DATABASE_URL });
    await pool.query("update upload_sessions set expires_at = now() - interval '1 second' where id = $1", [begun.uploadId]);
    // Any new upload sweeps expired sessions first.
    await user.client.datasets.beginUpload.mutate({ file: { path: 'next.jsonl', size: 3, sha256: 'b'.repeat(64) } });
    const { rows } = await pool.query('select count(*)::int as n from upload_sessions where id = $1', [begun.uploadId]);
    await pool.end();

    expect(rows[0].n).toBe(0);
    expect(await headObject(blobKey(sha256))).toBeNull();
    await expect(user.client.datasets.create.mutate({ uploadId: begun.uploadId, name: 'late', baseModelId: TINY_BASE_ID })).rejects.toThrow(/not found/);
  });
});
