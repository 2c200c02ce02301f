import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { appUrl } from './env';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Debian's Chromium with one browser context per signed-in person, closed together. */
export class SignedInBrowser {
  private browser: Browser | null = null;
  private readonly contexts: BrowserContext[] = [];

  async launch(): Promise<void> {
    this.browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS });
  }

  /** Signs `user` in through the sign-in page in a context of its own and returns its page. */
  async signedIn(user: { email: string; password: string; namespace: string }): Promise<Page> {
    if (!this.browser) throw new Error('browser not launched; call launch() before signedIn()');
    const context = await this.browser.newContext();
    this.contexts.push(context);
    const page = await context.newPage();
    await page.goto(`${appUrl}/signin`);
    await page.getByLabel('Email').fill(user.email);
    await page.getByLabel('Password').fill(user.password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByText(user.namespace, { exact: true }).waitFor();
    return page;
  }

  async close(): Promise<void> {
    for (const context of this.contexts) await context.close();
    await this.browser?.close();
  }
}
