import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appUrl } from '../setup/env';
import { SignedInBrowser } from '../setup/browser';
import { newUser } from '../setup/helpers';

// The team settings and invitation pages in Chromium, with two people in two browser contexts.
describe('team pages in Chromium', () => {
  const browser = new SignedInBrowser();
  const signedIn = (user: { email: string; password: string; namespace: string }) => browser.signedIn(user);

  beforeAll(() => browser.launch());
  afterAll(() => browser.close());

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
