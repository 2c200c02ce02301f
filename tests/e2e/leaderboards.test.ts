import { randomUUID } from 'node:crypto';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appUrl, TINY_BASE_ID } from '../setup/env';
import { adminClient, newUser } from '../setup/helpers';
import { seedResult, seedSuites, seedVersion, type SeededBoard } from '../setup/leaderboard-seed';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

describe('suite leaderboard and comparison pages in Chromium', () => {
  let browser: Browser;
  let page: Page;
  let user: Awaited<ReturnType<typeof newUser>>;
  let board: SeededBoard;
  const tag = `web${randomUUID().slice(0, 4)}`;

  beforeAll(async () => {
    user = await newUser('lbweb');
    board = await seedSuites(await adminClient(), tag, user.namespace);
    const first = await seedVersion(board, { name: 'web-first', rank: 16, trainableParameters: 4000, downloads: 1 });
    const second = await seedVersion(board, { name: 'web-second', rank: 4, trainableParameters: 1000, downloads: 9 });
    await seedResult(board, { taskId: board.domainTask, adapterVersionId: null, correct: 1 });
    await seedResult(board, { taskId: board.generalTask, adapterVersionId: null, correct: 2 });
    await seedResult(board, { taskId: board.domainTask, adapterVersionId: first, correct: 4 });
    await seedResult(board, { taskId: board.generalTask, adapterVersionId: first, correct: 1 });
    await seedResult(board, { taskId: board.domainTask, adapterVersionId: second, correct: 2 });
    await seedResult(board, { taskId: board.generalTask, adapterVersionId: second, correct: 3 });

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = await (await browser.newContext()).newPage();
  });

  afterAll(async () => {
    await browser?.close();
  });

  const rowNames = async () => (await page.getByTestId('leaderboard-row').locator('td:nth-child(3)').allTextContents());

  it('ranks, sorts by column and filters through the URL', async () => {
    await page.goto(`${appUrl}/leaderboard/suites/${board.domainSuite}?base=${TINY_BASE_ID}`);
    await page.getByTestId('suite-leaderboard').waitFor();
    expect(await rowNames()).toEqual([`${user.namespace}/web-first@1`, `${user.namespace}/web-second@1`]);
    expect(await page.getByTestId('gain').allTextContents()).toEqual(['+75.0', '+25.0']);
    expect(await page.getByTestId('forgetting').allTextContents()).toEqual(['-25.0', '+25.0']);
    expect(await page.getByTestId('chart-point').count()).toBe(2);
    expect(await page.getByTestId('suite-tasks').textContent()).toMatch(/50\.0%/);

    // Sorting by general change puts the version that forgot least first; ranks stay.
    await page.getByRole('link', { name: 'General change' }).click();
    await page.waitForURL(/sort=forgetting/);
    expect(await rowNames()).toEqual([`${user.namespace}/web-second@1`, `${user.namespace}/web-first@1`]);

    await page.getByLabel('Filter adapters').fill('web-first');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/q=web-first/);
    expect(await rowNames()).toEqual([`${user.namespace}/web-first@1`]);
  });

  it('compares two chosen versions', async () => {
    await page.goto(`${appUrl}/leaderboard/suites/${board.domainSuite}?base=${TINY_BASE_ID}`);
    await page.getByLabel(`compare ${user.namespace}/web-first@1`).check();
    await page.getByLabel(`compare ${user.namespace}/web-second@1`).check();
    await page.getByRole('button', { name: 'Compare selected (2–4)' }).click();
    await page.waitForURL(/\/evals\/compare\?v=/);
    const row = page.getByTestId('comparison-row').filter({ hasText: board.domainTask });
    await row.waitFor();
    expect(await row.getByTestId('difference').textContent()).toBe('-50.0');

    // A run link opens the run's details with its baselines and settings.
    await row.getByRole('link', { name: /^100\.0%/ }).click();
    await page.getByTestId('run-metrics').waitFor();
    expect(await page.getByTestId('run-metrics').textContent()).toMatch(/random choice 50\.0%.*seed 5/s);

    await page.goto(`${appUrl}/evals/compare?v=${user.namespace}/web-first@1`);
    const message = page.getByText(/Choose 2 to 4 versions on a leaderboard to compare; 1 was chosen/);
    await message.waitFor();
    expect(await message.isVisible()).toBe(true);
  });
});
