import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createClient } from '@adapters/client';
import { appUrl, TINY_BASE_ID } from '../setup/env';
import { newUser, writeAdapterFolder } from '../setup/helpers';

// The real `adapters` binary (bin/adapters.mjs), as a user runs it.

function adapters(args: string[], options: { token?: string; cwd?: string } = {}) {
  const auth = options.token ? ['--url', appUrl, '--token', options.token] : [];
  const result = spawnSync(process.execPath, [path.resolve('bin/adapters.mjs'), ...args, ...auth], { encoding: 'utf8', timeout: 120_000, cwd: options.cwd });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

describe('adapters binary', () => {
  it('publishes private, then toggles', async () => {
    const user = await newUser('cli-vis');
    const anonymous = createClient({ url: appUrl });
    const ref = { namespace: user.namespace, name: 'hidden' };

    const published = adapters(['publish', await writeAdapterFolder(), '--name', 'hidden', '--base', TINY_BASE_ID, '--private', '--json'], { token: user.token });
    expect(published.status, published.stderr).toBe(0);
    expect(JSON.parse(published.stdout)).toMatchObject({ namespace: user.namespace, name: 'hidden', version: 1 });
    await expect(anonymous.adapters.get.query(ref)).rejects.toThrow(/not found/);

    const opened = adapters(['visibility', `${user.namespace}/hidden`, 'public'], { token: user.token });
    expect(opened.status, opened.stderr).toBe(0);
    expect(opened.stdout.trim()).toBe(`${user.namespace}/hidden is now public`);
    expect((await anonymous.adapters.get.query(ref)).visibility).toBe('public');

    const closed = adapters(['visibility', `${user.namespace}/hidden`, 'private', '--json'], { token: user.token });
    expect(JSON.parse(closed.stdout)).toMatchObject({ previous: 'public', visibility: 'private' });
    await expect(anonymous.adapters.get.query(ref)).rejects.toThrow(/not found/);

    const wrong = adapters(['visibility', `${user.namespace}/hidden`, 'secret'], { token: user.token });
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toContain('visibility "secret" is invalid; write `adapters visibility');
  });

  it('explains an empty folder', async () => {
    const user = await newUser('cli-empty');
    const empty = await fs.mkdtemp(path.join(os.tmpdir(), 'empty-adapter-'));
    const result = adapters(['publish', empty, '--name', 'nothing', '--base', TINY_BASE_ID], { token: user.token });
    expect(result.status).toBe(1);
    expect(result.stderr.trim()).toBe(`error: folder ${empty} has no files to publish (hidden files are skipped); a PEFT adapter folder needs adapter_config.json and adapter_model.safetensors, and should have a README.md model card, as \`model.save_pretrained(dir)\` writes them`);
  });

  it('help runs outside the checkout', async () => {
    const result = adapters(['--help'], { cwd: os.tmpdir() });
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^Usage: adapters <command>/);
    expect(result.stdout).toContain('visibility NAMESPACE/NAME public|private');
  });

  it('npx adapters names itself in hints', () => {
    const result = spawnSync('npx', ['--offline', 'adapters', 'no-such-command'], { encoding: 'utf8', timeout: 120_000 });
    expect(result.status).toBe(1);
    // npm itself warns about the onnxruntime-node-install setting in .npmrc; only the CLI's lines count.
    const own = result.stderr.split('\n').filter((line) => !line.startsWith('npm warn')).join('\n').trim();
    expect(own).toBe('error: unknown command "no-such-command"; see `npx adapters --help`');
  });
});
