// Runs one scenario of the Tandem cloud's sign-in pages in headless Chromium, with a fresh
// profile, and prints one JSON line with the result.
//
//   node browser.mjs SCENARIO --cloud URL --login NAME [--code CODE] [--deny]
//                    [--provider NAME] [--screenshot FILE] [--pause-before-revoke]
//
// Scenarios: sign-in, create-and-revoke-key, approve-device, sign-out (see README.md).
// On failure: the page's URL, the addresses it went through and its text go to stderr,
// and the exit status is 1. The browser is Debian's Chromium (CHROMIUM, default
// /usr/bin/chromium); playwright-core never downloads one.

import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    cloud: { type: 'string' },
    login: { type: 'string', default: 'alice' },
    password: { type: 'string', default: 'any-password' },
    code: { type: 'string' },
    deny: { type: 'boolean', default: false },
    provider: { type: 'string', default: 'test-oidc' },
    screenshot: { type: 'string' },
    // create-and-revoke-key: print {"created": KEY} and wait for a line on stdin before
    // revoking, so the caller can use the key first.
    'pause-before-revoke': { type: 'boolean', default: false },
    'timeout-ms': { type: 'string', default: process.env.TANDEM_BROWSER_TIMEOUT_MS ?? '20000' },
    chromium: { type: 'string', default: process.env.CHROMIUM ?? '/usr/bin/chromium' },
  },
});
const [scenario] = positionals;
if (!values.cloud || !scenario) {
  console.error('usage: node browser.mjs SCENARIO --cloud URL [--login NAME] [--code CODE] [--deny]');
  process.exit(2);
}
const cloud = new URL(values.cloud);
const at = (path) => new URL(path, cloud).href;
const KEY_NAME = 'browser-e2e-key';

class ScenarioError extends Error {}
function check(condition, message) {
  if (!condition) throw new ScenarioError(message);
}

// Clicks `selector` (a submit button or link) and waits for the page it leads to.
async function follow(page, selector) {
  await Promise.all([page.waitForNavigation(), page.locator(selector).first().click()]);
}

// From the cloud's /signin page: the provider's button, its login and consent pages,
// and back to the cloud. Returns the cloud page the sign-in ended on.
async function signIn(page) {
  check(new URL(page.url()).pathname === '/signin', `expected the sign-in page, got ${page.url()}`);
  await follow(page, `#sign-in-${values.provider}`);
  await page.locator('input[name=prompt][value=login]').waitFor({ state: 'attached' });
  await page.fill('input[name=login]', values.login);
  await page.fill('input[name=password]', values.password);
  await follow(page, 'form:has(input[name=prompt][value=login]) [type=submit]');
  // The consent page comes the first time this account meets the client.
  if (await page.locator('input[name=prompt][value=consent]').count()) {
    await follow(page, 'form:has(input[name=prompt][value=consent]) [type=submit]');
  }
  const url = new URL(page.url());
  check(url.origin === cloud.origin, `sign-in did not come back to the cloud: ${page.url()}`);
  check(!url.pathname.startsWith('/auth/') && url.pathname !== '/signin',
    `sign-in ended on ${page.url()}`);
  return url;
}

async function text(page, selector) {
  return (await page.locator(selector).first().textContent())?.trim() ?? null;
}

async function signInToAccount(page) {
  await page.goto(at('/signin'));
  const url = await signIn(page);
  check(url.pathname === '/account', `sign-in landed on ${url.href}, not /account`);
}

const scenarios = {
  async 'sign-in'(page) {
    await signInToAccount(page);
    return { url: page.url(), email: await text(page, '#email'), tier: await text(page, '#tier') };
  },

  async 'create-and-revoke-key'(page) {
    await signInToAccount(page);
    const form = page.locator('#create-key');
    await form.locator('input[name=name]').fill(KEY_NAME);
    for (const scope of ['completions', 'chat']) {
      await form.locator(`input[name=scope][value=${scope}]`).check();
    }
    await follow(page, '#create-key [type=submit]');
    const key = await text(page, '#new-key');
    check(key, `no #new-key after creating a key (${page.url()})`);
    if (values['pause-before-revoke']) {
      console.log(JSON.stringify({ created: key }));
      const lines = createInterface({ input: process.stdin });
      await new Promise((resolve) => { lines.once('line', resolve); lines.once('close', resolve); });
      lines.close();
    }
    await page.goto(at('/account'));
    const row = page.locator('#keys tr[data-key-id]')
      .filter({ has: page.locator('td.key-name', { hasText: KEY_NAME }) });
    check(await row.count() === 1, `expected one row named ${KEY_NAME}, found ${await row.count()}`);
    const id = await row.getAttribute('data-key-id');
    await follow(page, `#keys tr[data-key-id="${id}"] form.revoke-key button`);
    await page.goto(at('/account'));
    const left = await page.locator('#keys tr[data-key-id]')
      .filter({ has: page.locator('td.key-name', { hasText: KEY_NAME }) }).count();
    return { key, revoked: left === 0, rows_after: await page.locator('#keys tr[data-key-id]').count() };
  },

  async 'approve-device'(page) {
    check(values.code, 'approve-device needs --code');
    await page.goto(at(`/device?user_code=${encodeURIComponent(values.code)}`));
    if (new URL(page.url()).pathname === '/signin') {
      await signIn(page);
    }
    check(new URL(page.url()).pathname === '/device', `expected the device page, got ${page.url()}`);
    const input = page.locator('#device-code input[name=user_code]');
    if (!(await input.inputValue())) await input.fill(values.code);
    await follow(page, '#device-code [type=submit]');
    await follow(page, values.deny ? '#deny' : '#approve');
    const result = await page.locator('#device-result').getAttribute('data-result');
    return { result, url: page.url(), text: await text(page, '#device-result') };
  },

  async 'sign-out'(page) {
    await signInToAccount(page);
    await follow(page, '#sign-out [type=submit]');
    const afterSignOut = page.url();
    await page.goto(at('/account'));
    const url = new URL(page.url());
    return { redirected_to_signin: url.pathname === '/signin', url: url.href, after_sign_out: afterSignOut };
  },
};

const run = scenarios[scenario];
if (!run) {
  console.error(`unknown scenario ${scenario}; one of ${Object.keys(scenarios).join(', ')}`);
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: values.chromium,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
});
let status = 0;
let page;
const visited = [];
try {
  const context = await browser.newContext();
  context.setDefaultTimeout(Number(values['timeout-ms']));
  page = await context.newPage();
  page.on('dialog', (dialog) => dialog.accept());
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) visited.push(frame.url());
  });
  page.on('response', (response) => {
    if (response.status() >= 400) visited.push(`(${response.status()} ${response.url()})`);
  });
  const result = await run(page);
  console.log(JSON.stringify(result));
} catch (error) {
  status = 1;
  console.error(`scenario ${scenario} failed: ${error instanceof ScenarioError ? error.message : error.stack}`);
  if (page) {
    console.error(`page: ${page.url()}`);
    console.error(`visited:\n  ${visited.join('\n  ')}`);
    const body = await page.locator('body').innerText({ timeout: 2000 }).catch(() => '(no text)');
    console.error(`text:\n${body}`);
  }
} finally {
  if (values.screenshot && page) {
    await page.screenshot({ path: values.screenshot, fullPage: true }).catch((error) => {
      console.error(`no screenshot: ${error.message}`);
    });
  }
  await browser.close();
}
process.exit(status);
