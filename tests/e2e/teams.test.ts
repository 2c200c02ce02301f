import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appUrl } from '../setup/env';
import { newUser } from '../setup/helpers';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

// The team settings and invitation pages in Chromium, with two people in two browser contexts.
describe('team pages in Chromium', () => {
  let browser: Browser;
  const contexts: BrowserContext[] = [];

  async function signedIn(user: { email: string; password: string; namespace: string }): Promise<Page> {
    const context = await browser.newContext();
    contexts.push(context);
    const page = await context.newPage();
    await page.goto(`${appUrl}/signin`);
    await page.getByLabel('Email').fill(user.email);
    await page.getByLabel('Password').fill(user.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText(user.namespace, { exact: true }).waitFor();
    return page;
  }

  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  });

  afterAll(async () => {
    for (const context of contexts) await context.close();
    await browser?.close();
  });

  it('invites a member by link', async () => {
    const owner = await newUser('page-owner');
    const invited = await newUser('page-guest');
    const team = `${owner.namespace}-team`;

    const ownerPage = await signedIn(owner);
    await ownerPage.goto(`${appUrl}/settings/teams`);
    await ownerPage.getByPlaceholder('New team name').fill(team);
    await ownerPage.getByRole('button', { name: 'Create team' }).click();
    const settings = ownerPage.getByTestId('team-settings');
    await settings.getByRole('heading', { name: team }).waitFor();
    await settings.locator('select[name="role"]').selectOption('viewer');
    await settings.getByRole('button', { name: 'Create invitation link' }).click();
    const link = (await settings.getByTestId('invite-link').textContent())!;
    expect(link).toMatch(new RegExp(`^${appUrl}/settings/teams/join\\?token=ami_`));

    const guestPage = await signedIn(invited);
    await guestPage.goto(link);
    await guestPage.getByRole('button', { name: 'Accept invitation' }).click();
    await guestPage.getByText(`You joined ${team} as viewer.`).waitFor();

    // The owner sees the new member and the join in the audit log.
    await ownerPage.reload();
    await ownerPage.getByRole('button', { name: team }).click();
    await settings.getByRole('cell', { name: invited.email }).first().waitFor();
    await settings.getByTestId('audit-log').getByRole('cell', { name: 'member.join' }).waitFor();

    // A used link does not work again.
    await guestPage.goto(link);
    await guestPage.getByRole('button', { name: 'Accept invitation' }).click();
    await guestPage.getByText(/invitation .*not found/).waitFor();
  });
});
