// The /dashboard page in headless Chromium (Debian's, driven by playwright-core): it loads
// behind the admin token and shows a pusher-js connection and an event the Node SDK triggers.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium } from './browser.mjs';
import { startHerald } from './herald.mjs';
import { cleanup, connectPusher, serverSdk, subscribe, unique } from './helpers.mjs';

const TOKEN = 'dashboard-token-0123456789';
let herald;
let browser;

before(async () => {
  herald = await startHerald({ dashboard: { enabled: true, admin_token: TOKEN } });
  browser = await launchChromium();
});
after(async () => {
  await cleanup();
  await browser?.close();
  herald?.stop();
});

test('the dashboard shows a live connection and a triggered event', async () => {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${herald.port}/dashboard?token=${TOKEN}`);
  await page.waitForSelector('text=live', { timeout: 10_000 });

  const channel = unique('dash-');
  const pusher = await connectPusher(herald);
  await subscribe(pusher, channel);
  await serverSdk(herald).trigger(channel, 'order-shipped', { id: 42 });

  await page.waitForSelector('#log tr.connected', { timeout: 10_000 });
  const eventRow = await page.waitForSelector(`#log tr.event >> text=order-shipped on ${channel}`, { timeout: 10_000 });
  assert.match(await eventRow.textContent(), /"id":42/);
  await page.waitForSelector(`#channels tr[data-channel="${channel}"]`, { timeout: 10_000 });
  assert.equal((await page.textContent('#connections')).trim(), '1');
  await page.screenshot({ path: '/tmp/herald-dashboard.png', fullPage: true });
});

test('the dashboard refuses a wrong token', async () => {
  const response = await (await browser.newPage()).goto(`http://127.0.0.1:${herald.port}/dashboard?token=wrong`);
  assert.equal(response.status(), 401);
});
