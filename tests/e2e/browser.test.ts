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
  const cspViolations: string[] = [];

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
    // Chromium reports every resource or script that the Content-Security-Policy blocks on the console.
    page.on('console', (message) => {
      if (/Content.Security.Policy/i.test(message.text())) cspViolations.push(message.text());
    });
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

  it('searches, filters, opens the adapter, switches versions and downloads a file', async () => {
    await page.goto(`${appUrl}/`);
    await page.getByLabel('Search adapters').fill('web-adapter');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForURL(/\?q=web-adapter/);
    const card = page.getByRole('link', { name: new RegExp(`${user.namespace}/web-adapter`) });
    await card.waitFor();
    expect(await card.textContent()).toMatch(/rank 4/);

    // Facet filters go into the URL and narrow the results.
    await page.getByRole('radio', { name: /^medical/ }).click();
    await page.waitForURL(/domain=medical/);
    await card.waitFor();
    await page.getByRole('radio', { name: /^4 \(/ }).click();
    await page.waitForURL(/rank=4/);
    await card.click();
    await page.getByRole('heading', { name: `${user.namespace}/web-adapter` }).waitFor();
    expect(await page.getByRole('heading', { name: 'Files (version 2)' }).isVisible()).toBe(true);

    await page.getByTestId('versions').getByRole('link', { name: 'v1' }).click();
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

  it('publishes a new version from the web with a progress bar', async () => {
    const dir = await writeAdapterFolder({ rank: 4, readme: '---\nbase_model: tiny-llama\nlibrary_name: peft\nlicense: mit\ntags: [web]\n---\n# Web adapter, third version\n' });
    // Larger than one part, so the browser sends it as a multipart upload.
    await fs.writeFile(path.join(dir, 'training_log.txt'), Buffer.alloc(20 * 1024 * 1024, 'log line\n'));
    await page.goto(`${appUrl}/${user.namespace}/web-adapter`);
    await page.getByRole('link', { name: 'Publish a new version' }).click();
    await page.waitForURL(/\/publish\?name=web-adapter/);
    expect(await page.getByLabel('Adapter name').inputValue()).toBe('web-adapter');

    const names = ['adapter_config.json', 'adapter_model.safetensors', 'README.md', 'training_log.txt'];
    await page.getByLabel('Adapter files').setInputFiles(names.map((name) => path.join(dir, name)));
    await page.getByLabel('Version label (optional)').fill('3.0.0');
    await page.getByLabel('Changelog').fill('Adds a training log.');
    await page.getByRole('button', { name: 'Publish' }).click();
    await page.getByLabel('Upload progress').waitFor();

    await page.waitForURL(/\?version=3$/, { timeout: 60_000 });
    await page.getByRole('heading', { name: 'Files (version 3)' }).waitFor();
    expect(await page.getByText('Adds a training log.').isVisible()).toBe(true);
    expect(await page.getByTestId('versions').textContent()).toMatch(/v3 \(3\.0\.0\)/);
    const published = await user.client.adapters.get.query({ namespace: user.namespace, name: 'web-adapter' });
    expect(published.files.find((f) => f.path === 'training_log.txt')?.size).toBe(20 * 1024 * 1024);
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
    const jobUrl = page.url();
    expect(await page.getByTestId('job-timeline').textContent()).toMatch(/queued.*claimed by a runner, attempt 1.*running on .*succeeded/);
    expect(await page.getByTestId('job-progress').getByText('3 / 3').isVisible()).toBe(true);
    await page.getByTestId('notification-unread').waitFor({ timeout: 20_000 });

    await page.getByRole('link', { name: 'Clone and edit' }).click();
    await page.getByTestId('clone-source').waitFor();
    expect(await page.getByLabel('Adapter name').inputValue()).toBe('web-finetune');
    expect(await page.getByLabel('Max steps (optional)').inputValue()).toBe('3');
    expect(await page.getByLabel('Max sequence length (tokens)').inputValue()).toBe('768');

    await page.goto(jobUrl);
    await page.getByTestId('job-result').click();
    await page.getByRole('heading', { name: `${user.namespace}/web-finetune` }).waitFor();
    expect(await page.getByText('"jobId"').count()).toBe(1);
  });

  it('maps CSV columns, shows the report and creates a mixed version', async () => {
    await page.goto(`${appUrl}/finetune`);
    await page.getByLabel('Base model').selectOption(TINY_BASE_ID);
    await page.getByLabel('Data set file').setInputFiles('tests/fixtures/datasets/mapping.csv');

    // The header row is read in the browser and the usual column names are chosen by default.
    const mapping = page.getByTestId('column-mapping');
    await mapping.waitFor();
    expect(await page.getByLabel('prompt column').inputValue()).toBe('question');
    expect(await page.getByLabel('completion column').inputValue()).toBe('answer');
    await page.getByLabel('system column').selectOption('instructions');
    await page.getByRole('button', { name: 'Upload and validate' }).click();

    const report = page.getByTestId('validation-report');
    await report.getByText('Valid: 12 examples (messages)').waitFor();
    await report.getByText('From CSV file mapping.csv, columns: prompt = question, completion = answer, system = instructions').waitFor();
    expect(await page.getByTestId('dataset-statistics').getByText('CPU runner (2 cores)').isVisible()).toBe(true);

    await page.getByLabel('General data percent').fill('20');
    await page.getByRole('button', { name: 'Create cleaned version' }).click();
    // 12 examples at 20% general data: round(12 × 0.2 / 0.8) = 3 more.
    await report.getByText('Valid: 15 examples (messages)').waitFor();
    expect(await page.getByTestId('dataset-mix').textContent()).toMatch(/^General data: 3 examples of bundled:self-instruct-seed \(Apache-2.0\), ratio 20%, seed 42/);
  });

  it('pages run under the CSP', async () => {
    const response = await page.goto(`${appUrl}/publish`);
    expect(response?.headers()['content-security-policy']).toContain("default-src 'self'");
    // The earlier tests signed in, uploaded to S3, hashed files with WebAssembly and downloaded.
    expect(cspViolations).toEqual([]);
  });
});
