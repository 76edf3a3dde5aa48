// Swagger UI in a real browser: loads clnrest's Swagger UI, authorizes with a rune (the
// `rune` apiKey scheme), runs "Try it out" on POST /v1/getinfo and expects the 201.
//
// Usage: node tests/e2e/swagger_ui.mjs <base-url> <rune> <screenshot.png>
// Run by tests/openapi_document.rs with CLNREST_E2E=1. Uses Debian's Chromium
// (/usr/bin/chromium, or $CHROMIUM) through playwright-core; no browser is downloaded.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

const [base, rune, screenshot] = process.argv.slice(2);
if (!base || !rune || !screenshot) {
  console.error('usage: node swagger_ui.mjs <base-url> <rune> <screenshot.png>');
  process.exit(2);
}

const TIMEOUT_MS = 30_000;
const OPERATION = '#operations-lightningd-getinfo';

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});

let failed = false;
const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
page.setDefaultTimeout(TIMEOUT_MS);
page.on('pageerror', (error) => console.log(`page error: ${error.message}`));
page.on('console', (message) => {
  if (message.type() === 'error') console.log(`console error: ${message.text()}`);
});
const executed = [];
page.on('request', (request) => {
  if (request.url().endsWith('/v1/getinfo')) {
    executed.push({ method: request.method(), rune: request.headers()['rune'] });
  }
});

try {
  const ui = `${base}/swagger-ui/`;
  const response = await page.goto(ui, { waitUntil: 'load' });
  console.log(`loaded ${ui}: HTTP ${response?.status()}`);
  const operation = page.locator(OPERATION);
  await operation.waitFor({ state: 'visible' });

  // Authorize: the rune goes in the `rune` apiKey scheme.
  await page.locator('.auth-wrapper button.authorize').click();
  const dialog = page.locator('.modal-ux');
  await dialog.waitFor({ state: 'visible' });
  await dialog.locator('input').first().fill(rune);
  await dialog.locator('button.authorize').click();
  await dialog.locator('button.btn-done').click();
  await dialog.waitFor({ state: 'detached' });

  // Expand POST /v1/getinfo, Try it out, Execute.
  await operation.locator('.opblock-summary').first().click();
  await operation.locator('.opblock-body').waitFor({ state: 'visible' });
  // The page re-renders its ~200 operations while settling: click again until it took.
  const execute = operation.locator('button.execute');
  for (let attempt = 1; !(await execute.isVisible()); attempt++) {
    if (attempt > 5) throw new Error('"Try it out" never showed the Execute button');
    await operation.locator('button.try-out__btn').click();
    await execute.waitFor({ state: 'visible', timeout: 5_000 }).catch(() => {});
  }
  await execute.click();

  const status = operation.locator('.live-responses-table .response .response-col_status').first();
  await status.waitFor({ state: 'visible' });
  const code = (await status.innerText()).trim();
  const body = (await operation.locator('.live-responses-table .response-col_description pre').first().innerText()).trim();
  console.log(`response status: ${code}`);
  console.log(`response body: ${body.slice(0, 300)}`);
  console.log(`requests sent: ${JSON.stringify(executed.map((r) => ({ method: r.method, rune: r.rune === rune })))}`);

  // The operation from its summary down to the server response (not the documented ones).
  // Bounding boxes are relative to the viewport, a full-page clip to the page.
  const scrollY = await page.evaluate(() => window.scrollY);
  const top = await operation.boundingBox();
  const table = await operation.locator('.live-responses-table').first().boundingBox();
  mkdirSync(dirname(screenshot), { recursive: true });
  await page.screenshot({
    path: screenshot,
    fullPage: true,
    clip: {
      x: top.x,
      y: top.y + scrollY,
      width: top.width,
      height: table.y + table.height - top.y + 10,
    },
  });
  console.log(`screenshot: ${screenshot}`);

  if (!code.startsWith('201')) {
    console.log(`FAIL: expected 201, got ${code}`);
    failed = true;
  }
  if (!executed.some((r) => r.method === 'POST' && r.rune === rune)) {
    console.log('FAIL: no POST /v1/getinfo carried the rune from the Authorize dialog');
    failed = true;
  }
  if (!body.includes('"alias"')) {
    console.log('FAIL: the response body shown is not getinfo\'s result');
    failed = true;
  }
} catch (error) {
  console.log(`FAIL: ${error.stack || error}`);
  failed = true;
  try {
    mkdirSync(dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot.replace(/\.png$/, '-failure.png'), fullPage: false });
  } catch {
    // Best effort only.
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
