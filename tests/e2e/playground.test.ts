import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@/lib/trpc-client';
import { testEnv, TINY_BASE_ID } from '../setup/env';
import { registerBaseModelFromFolder } from '../../scripts/seed-lib';
import { adminClient, newUser, runCli, startExtraApp, stopExtraApp, waitFor, writeAdapterFolder } from '../setup/helpers';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// An app of its own, with the playground graph folder and a small playground rate limit.
const port = testEnv.APP_PORT + 13;
const url = `http://127.0.0.1:${port}`;
const METRICS_TOKEN = 'playground-test-metrics-token';
const PLAYGROUND_LIMIT = 3;
const WINDOW_SECONDS = 3600;

interface StreamLine { type: string; column?: 'base' | 'adapter'; text?: string; tokens?: number; seed?: number }

function exportGraph(model: string, out: string) {
  const exported = spawnSync(path.resolve('.venv/bin/python'), ['-m', 'worker', 'export-onnx', '--model', model, '--out', out, '--lora-inputs', '--no-merged', '--max-rank', '8'], {
    cwd: path.resolve('gpu-runner'), encoding: 'utf8', timeout: 120_000,
  });
  expect(exported.status, exported.stderr).toBe(0);
}

function play(body: Record<string, unknown>, token?: string): Promise<Response> {
  return fetch(`${url}/api/playground`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
}

async function lines(response: Response): Promise<StreamLine[]> {
  return (await response.text()).split('\n').filter(Boolean).map((line) => JSON.parse(line) as StreamLine);
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${url}/api/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (!match) throw new Error(`metric ${name} missing from /api/metrics`);
  return Number(match[1]);
}

describe('adapter playground', () => {
  let app: ReturnType<typeof startExtraApp>;
  let root: string;
  let user: Awaited<ReturnType<typeof newUser>>;
  let browser: Browser | undefined;

  beforeAll(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'playground-e2e-'));
    exportGraph(path.resolve(testEnv.TINY_MODEL_DIR), path.join(root, 'graphs', TINY_BASE_ID));
    app = startExtraApp(port, {
      PLAYGROUND_GRAPH_DIR: path.join(root, 'graphs'), PLAYGROUND_CACHE_DIR: path.join(root, 'cache'), RATE_LIMIT_PLAYGROUND: String(PLAYGROUND_LIMIT), RATE_LIMIT_WINDOW_SECONDS: String(WINDOW_SECONDS),
      METRICS_TOKEN, PLAYGROUND_MAX_TOKENS: '16', PLAYGROUND_MAX_PROMPT_TOKENS: '96',
    });

    user = await newUser('play');
    const first = await writeAdapterFolder({ rank: 4, targets: ['q_proj', 'v_proj'] });
    const second = await writeAdapterFolder({ rank: 2, targets: ['o_proj', 'down_proj'] });
    const tooWide = await writeAdapterFolder({ rank: 12, targets: ['q_proj'] });
    expect(runCli(['publish', first, '--name', 'play-a', '--base', TINY_BASE_ID], user.token).status).toBe(0);
    expect(runCli(['publish', second, '--name', 'play-b', '--base', TINY_BASE_ID], user.token).status).toBe(0);
    expect(runCli(['publish', tooWide, '--name', 'play-wide', '--base', TINY_BASE_ID], user.token).status).toBe(0);
    await waitFor('the playground app', async () => (await fetch(`${url}/api/health`).catch(() => null))?.ok ?? false, 60_000);
  });

  afterAll(async () => {
    await browser?.close();
    if (app) await stopExtraApp(app);
    await fs.rm(root, { recursive: true, force: true });
  });

  it('streams both columns for two adapters on one base session', async () => {
    expect(await metric('adapters_playground_base_session_loads_total')).toBe(0);
    for (const name of ['play-a', 'play-b']) {
      const response = await play({ namespace: user.namespace, name, prompt: 'Say hello', temperature: 0, maxTokens: 6 }, user.token);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/application\/x-ndjson/);
      const stream = await lines(response);
      expect(stream[0]).toMatchObject({ type: 'start', baseModelId: TINY_BASE_ID, version: 1 });
      expect(stream.at(-1)).toEqual({ type: 'end' });
      for (const column of ['base', 'adapter'] as const) {
        expect(stream.filter((line) => line.type === 'token' && line.column === column).length, column).toBeGreaterThan(0);
        expect(stream.find((line) => line.type === 'done' && line.column === column)?.tokens, column).toBeGreaterThan(0);
      }
    }
    expect(await metric('adapters_playground_base_session_loads_total')).toBe(1);
    expect(await metric('adapters_playground_adapter_loads_total')).toBe(2);
  });

  it('reproduces a sampled generation from its seed', async () => {
    const request = { namespace: user.namespace, name: 'play-a', prompt: 'Count', temperature: 1.5, maxTokens: 8, seed: 1234 };
    const text = (stream: StreamLine[]) => stream.filter((line) => line.type === 'token' && line.column === 'adapter').map((line) => line.text).join('');
    const other = await newUser('play-seed');
    const first = text(await lines(await play(request, other.token)));
    const second = text(await lines(await play(request, other.token)));
    expect(first.length).toBeGreaterThan(0);
    expect(second).toBe(first);
    expect(await metric('adapters_playground_adapter_cache_hits_total')).toBeGreaterThanOrEqual(2);
  });

  it('downloads a graph stored with the base model once', async () => {
    // A base model of its own, registered with the exported graph in its onnx/ folder and
    // absent from PLAYGROUND_GRAPH_DIR, so the app must fetch the graph from S3.
    const baseId = `tiny-onnx-${Date.now().toString(36)}`;
    const folder = path.join(root, 'stored-base');
    await fs.cp(path.resolve(testEnv.TINY_MODEL_DIR), folder, { recursive: true });
    // The same tiny model, so the graph exported in beforeAll serves; exporting again costs seconds.
    await fs.cp(path.join(root, 'graphs', TINY_BASE_ID), path.join(folder, 'onnx'), { recursive: true });
    await registerBaseModelFromFolder(await adminClient(), folder, baseId, 'Tiny random Llama with its playground graph');
    const adapter = await writeAdapterFolder({ rank: 4, targets: ['q_proj', 'v_proj'] });
    expect(runCli(['publish', adapter, '--name', 'play-stored', '--base', baseId], user.token).status).toBe(0);

    const loadsBefore = await metric('adapters_playground_base_session_loads_total');
    const caller = await newUser('play-stored');
    for (let i = 0; i < 2; i++) {
      const stream = await lines(await play({ namespace: user.namespace, name: 'play-stored', prompt: 'Hi', maxTokens: 3 }, caller.token));
      expect(stream[0]).toMatchObject({ type: 'start', baseModelId: baseId });
      expect(stream.at(-1)).toEqual({ type: 'end' });
    }
    expect(await metric('adapters_playground_base_session_loads_total')).toBe(loadsBefore + 1);
    const cached = await fs.readdir(path.join(root, 'cache'));
    expect(cached.filter((name) => name.startsWith(baseId) && !name.includes('.partial'))).toHaveLength(1);
  });

  it('rejects anonymous callers', async () => {
    const response = await play({ namespace: user.namespace, name: 'play-a', prompt: 'x' });
    expect(response.status).toBe(401);
  });

  it('rejects max tokens above the setting', async () => {
    const caller = await newUser('play-cap');
    const response = await play({ namespace: user.namespace, name: 'play-a', prompt: 'x', maxTokens: 17 }, caller.token);
    expect(response.status).toBe(400);
    expect((await response.json()).error.message).toMatch(/maxTokens must be at most 16 \(PLAYGROUND_MAX_TOKENS\)/);
  });

  it('rejects prompts above the token limit', async () => {
    const caller = await newUser('play-long');
    const response = await play({ namespace: user.namespace, name: 'play-a', prompt: 'word '.repeat(200), maxTokens: 1 }, caller.token);
    expect(response.status).toBe(400);
    expect((await response.json()).error.message).toMatch(/prompt is \d+ tokens after the chat template, above the limit of 96 \(PLAYGROUND_MAX_PROMPT_TOKENS\)/);
  });

  it('rejects a rank above the graph maximum', async () => {
    const caller = await newUser('play-wide');
    const response = await play({ namespace: user.namespace, name: 'play-wide', prompt: 'x', maxTokens: 1 }, caller.token);
    expect(response.status).toBe(400);
    expect((await response.json()).error.message).toMatch(/has rank 12, above the playground graph's maximum rank 8/);
  });

  it('answers 429 with Retry-After per user', async () => {
    const caller = await newUser('play-limit');
    const statuses: number[] = [];
    // Empty prompts fail validation after the limit counted them, so no generation runs.
    for (let i = 0; i < PLAYGROUND_LIMIT; i++) statuses.push((await play({ namespace: user.namespace, name: 'play-a', prompt: '' }, caller.token)).status);
    expect(statuses).toEqual([400, 400, 400]);
    const limited = await play({ namespace: user.namespace, name: 'play-a', prompt: 'x' }, caller.token);
    expect(limited.status).toBe(429);
    const retryAfter = Number(limited.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(WINDOW_SECONDS);
  });

  it('fills both columns in the browser and saves on request', async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const viewer = await newUser('play-web');
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${url}/signin`);
    await page.getByLabel('Email').fill(viewer.email);
    await page.getByLabel('Password').fill(viewer.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText(viewer.namespace, { exact: true }).waitFor();

    await page.goto(`${url}/${user.namespace}/play-b`);
    await page.getByTestId('playground-prompt').fill('Tell me a story');
    await page.getByLabel('Max tokens').fill('12');
    await page.getByTestId('playground-generate').click();
    await page.getByTestId('playground-save').waitFor();
    const base = await page.getByTestId('playground-base').textContent();
    const adapter = await page.getByTestId('playground-adapter').textContent();
    expect(base!.length).toBeGreaterThan(0);
    expect(adapter!.length).toBeGreaterThan(0);

    await page.getByTestId('playground-save').click();
    await page.getByRole('button', { name: 'Saved' }).waitFor();
    const saved = await createClient({ url, token: viewer.token }).playground.saved.query({ namespace: user.namespace, name: 'play-b' });
    expect(saved).toHaveLength(1);
    expect(saved[0]).toMatchObject({ prompt: 'Tell me a story', maxTokens: 12, baseOutput: base, adapterOutput: adapter });
  });
});
