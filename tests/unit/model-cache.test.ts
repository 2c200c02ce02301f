import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { evict } from '../../gpu-runner/src/model-cache';

async function model(dir: string, name: string, bytes: number, lastUsed: string) {
  await fs.mkdir(path.join(dir, name), { recursive: true });
  await fs.writeFile(path.join(dir, name, 'model.safetensors'), Buffer.alloc(bytes));
  await fs.writeFile(path.join(dir, name, '.last-used'), lastUsed);
}

describe('base model cache eviction', () => {
  it('deletes least recently used models until the cache fits', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cache-'));
    await model(dir, 'old', 400, '2026-01-01T00:00:00Z');
    await model(dir, 'middle', 400, '2026-02-01T00:00:00Z');
    await model(dir, 'new', 400, '2026-03-01T00:00:00Z');
    expect(await evict(dir, path.join(dir, 'new'), 900)).toEqual(['old']);
    expect((await fs.readdir(dir)).sort()).toEqual(['middle', 'new']);
  });

  it('never deletes the model in use, even alone over the cap', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cache-'));
    await model(dir, 'huge', 1000, '2026-01-01T00:00:00Z');
    await model(dir, 'other', 10, '2026-03-01T00:00:00Z');
    expect(await evict(dir, path.join(dir, 'huge'), 500)).toEqual(['other']);
    expect(await fs.readdir(dir)).toEqual(['huge']);
  });

  it('keeps everything under the cap', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cache-'));
    await model(dir, 'a', 100, '2026-01-01T00:00:00Z');
    expect(await evict(dir, path.join(dir, 'b'), 1000)).toEqual([]);
  });
});
