import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { appUrl, TINY_BASE_ID } from '../setup/env';
import { newUser, runCli, runPython, writeAdapterFolder } from '../setup/helpers';

const SNAPSHOT = `
import json, os, sys
from huggingface_hub import HfApi, snapshot_download
repo, endpoint, cache = sys.argv[1:4]
info = HfApi(endpoint=endpoint).model_info(repo)
path = snapshot_download(repo_id=repo, endpoint=endpoint, cache_dir=cache)
old = snapshot_download(repo_id=repo, endpoint=endpoint, cache_dir=cache, revision="1")
print(json.dumps({"sha": info.sha, "files": sorted(os.listdir(path)), "old": open(os.path.join(old, "README.md")).read()}))
`;

// HF_ENDPOINT is read when huggingface_hub is imported, so the test sets it in the environment.
const PEFT_LOAD = `
import sys
from transformers import AutoModelForCausalLM
from peft import PeftModel
base = AutoModelForCausalLM.from_pretrained(sys.argv[1])
model = PeftModel.from_pretrained(base, sys.argv[2])
print(sum(1 for n, _ in model.named_parameters() if "lora_A" in n))
`;

/** Sends a HEAD on a fresh connection (node:http), so no pooled keep-alive socket is reused. */
function head(url: string): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    http.request(url, { method: 'HEAD', agent: false }, (response) => {
      response.resume();
      resolve(response);
    }).on('error', reject).end();
  });
}

describe('Hugging Face compatible read API', () => {
  let user: Awaited<ReturnType<typeof newUser>>;
  let repo: string;

  beforeAll(async () => {
    user = await newUser('hub');
    repo = `${user.namespace}/hub-adapter`;
    for (const card of ['# first', '# second']) {
      const dir = await writeAdapterFolder({ rank: 4, readme: card });
      expect(runCli(['publish', dir, '--name', 'hub-adapter', '--base', TINY_BASE_ID], user.token).status).toBe(0);
    }
  });

  it('serves snapshot_download at main and at a version', async () => {
    const cache = await fs.mkdtemp(path.join(os.tmpdir(), 'hf-cache-'));
    const result = runPython(SNAPSHOT, [repo, appUrl, cache], { HF_HUB_OFFLINE: '0' });
    expect(result.stderr).not.toMatch(/Traceback/);
    const parsed = JSON.parse(result.stdout.trim().split('\n').pop()!);
    expect(parsed.sha).toMatch(/^[0-9a-f]{40}$/);
    expect(parsed.files).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors']);
    expect(parsed.old).toBe('# first');
  });

  it('loads with PeftModel.from_pretrained through HF_ENDPOINT', async () => {
    const cache = await fs.mkdtemp(path.join(os.tmpdir(), 'hf-cache-'));
    const result = runPython(PEFT_LOAD, [path.resolve('.test-data/tiny-llama'), repo], { HF_HUB_OFFLINE: '0', HF_ENDPOINT: appUrl, HF_HUB_CACHE: cache });
    expect(result.stderr).not.toMatch(/Traceback/);
    expect(Number(result.stdout.trim().split('\n').pop())).toBeGreaterThan(0);
  });

  it('sends Hub headers on HEAD, 404 when unknown', async () => {
    const response = await head(`${appUrl}/${repo}/resolve/main/adapter_config.json`);
    expect(response.statusCode).toBe(302);
    const page = await user.client.adapters.get.query({ namespace: user.namespace, name: 'hub-adapter' });
    const file = page.files.find((f) => f.path === 'adapter_config.json')!;
    expect(response.headers['x-linked-etag']).toBe(`"${file.sha256}"`);
    expect(response.headers['x-linked-size']).toBe(String(file.size));
    expect(response.headers['x-repo-commit']).toMatch(/^[0-9a-f]{40}$/);

    const ranged = await fetch(response.headers.location!, { headers: { Range: 'bytes=0-9' } });
    expect(ranged.status).toBe(206);
    expect((await ranged.arrayBuffer()).byteLength).toBe(10);

    const missing = await fetch(`${appUrl}/api/models/${user.namespace}/nothing-here`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get('x-error-code')).toBe('RepoNotFound');
  });
});
