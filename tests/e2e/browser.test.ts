import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toJsonl } from '../../scripts/demo-data';
import { appUrl, TINY_BASE_ID } from '../setup/env';
import { newUser, runCli, startRunner, writeAdapterFolder, type RunnerProcess } from '../setup/helpers';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

describe('web app in Chromium', () => {
  let browser: Browser;
  let page: Page;
  let runner: RunnerProcess;
  let user: Awaited<ReturnType<typeof newUser>>;

  beforeAll(async () => {
    user = await newUser('web');
    const dir = await writeAdapterFolder({ rank: 4, readme: '---\nbase_model: tiny-llama\nlibrary_name: peft\n---\n# Web adapter\n\nA **bold** claim.\n\n<script>window.pwned = true</script>\n<img src=x onerror="window.pwned = true">\n' });
    expect(runCli(['publish', dir, '--name', 'web-adapter', '--base', TINY_BASE_ID, '--domain', 'medical'], user.token).status).toBe(0);
    expect(runCli(['publish', dir, '--name', 'web-adapter', '--base', TINY_BASE_ID], user.token).status).toBe(0);
    runner = await startRunner('web-runner');

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = await (await browser.newContext({ acceptDownloads: true })).newPage();
  });

  afterAll(async () => {
    await browser?.close();
    await runner?.stop();
  });

  it('signs in through the form', async () => {
    await page.goto(`${appUrl}/signin`);
    await page.getByLabel('Email').fill(user.email);
    await page.getByLabel('Password').fill(user.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText(user.namespace, { exact: true }).waitFor();
  });

  it('finds the adapter, switches versions and downloads a file', async () => {
    await page.goto(`${appUrl}/?q=web-adapter`);
    await page.getByRole('link', { name: new RegExp(`${user.namespace}/web-adapter`) }).click();
    await page.getByRole('heading', { name: `${user.namespace}/web-adapter` }).waitFor();
    expect(await page.getByRole('heading', { name: 'Files (version 2)' }).isVisible()).toBe(true);

    await page.getByTestId('version-select').selectOption('1');
    await page.getByRole('button', { name: 'Show version' }).click();
    await page.getByRole('heading', { name: 'Files (version 1)' }).waitFor();

    // The model card renders Markdown and drops the script and the event handler.
    expect(await page.locator('.markdown strong').textContent()).toBe('bold');
    expect(await page.evaluate(() => (window as unknown as { pwned?: boolean }).pwned)).toBeUndefined();

    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download adapter_config.json' }).click()]);
    expect(download.suggestedFilename()).toBe('adapter_config.json');
    const saved = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'download-')), 'adapter_config.json');
    await download.saveAs(saved);
    expect(JSON.parse(await fs.readFile(saved, 'utf8'))).toMatchObject({ peft_type: 'LORA', r: 4 });

    // The archive link downloads the version shown, not the latest one.
    const [archive] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download all (.tar)' }).click()]);
    expect(archive.suggestedFilename()).toBe(`${user.namespace}--web-adapter-v1.tar`);
    const savedArchive = path.join(path.dirname(saved), 'web-adapter-v1.tar');
    await archive.saveAs(savedArchive);
    const tarHeader = (await fs.readFile(savedArchive)).subarray(0, 512);
    expect(tarHeader.subarray(0, 10).toString('ascii')).toBe('README.md\0');
    expect(tarHeader.subarray(257, 262).toString('ascii')).toBe('ustar');
  });

  it('starts a fine-tune from the form and sees it succeed', async () => {
    const rows = (await fs.readFile('.test-data/demo/pubmedqa-train.jsonl', 'utf8')).split('\n').filter(Boolean).slice(0, 16).map((l) => JSON.parse(l));
    const file = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'web-data-')), 'web-pubmedqa.jsonl');
    await fs.writeFile(file, toJsonl(rows));

    await page.goto(`${appUrl}/finetune`);
    await page.getByLabel('Base model').selectOption(TINY_BASE_ID);
    await page.getByLabel('Data set file').setInputFiles(file);
    await page.getByTestId('validation-report').getByText('Valid: 16 examples').waitFor();

    await page.getByLabel('Adapter name').fill('web-finetune');
    await page.getByLabel('Max sequence length (tokens)').fill('768');
    await page.getByLabel('Max steps (optional)').fill('3');
    await page.getByLabel('Evaluation items (empty: all)').fill('10');
    await page.getByRole('button', { name: 'Start fine-tune' }).click();

    await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/);
    await page.getByTestId('job-state').getByText('succeeded').waitFor({ timeout: 180_000 });
    await page.getByTestId('job-result').click();
    await page.getByRole('heading', { name: `${user.namespace}/web-finetune` }).waitFor();
    expect(await page.getByText('"jobId"').count()).toBe(1);
  });
});
