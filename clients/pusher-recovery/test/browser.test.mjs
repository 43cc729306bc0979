// The plugin in headless Chromium (Debian's, driven by playwright-core) with pusher-js's
// minified web build, loaded as plain ES modules without a bundler: recovery across a cut
// connection (over a WebSocket, and over pusher-js's xhr_streaming fallback with WebSocket
// removed from the page), and across a page reload through sessionStorage.

import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { publish, serverSdk, startHistoryHerald, startRelay, unique } from './support/harness.mjs';

const CHROMIUM = '/usr/bin/chromium';
const PLUGIN = join(dirname(fileURLToPath(import.meta.url)), '..');
const compatRequire = createRequire(join(PLUGIN, '..', '..', 'compat-tests', 'package.json'));
const PUSHER_WEB = join(dirname(compatRequire.resolve('pusher-js/package.json')), 'dist', 'web', 'pusher.min.js');
const { chromium } = compatRequire('playwright-core');
const WAIT = { timeout: 10_000 };

let herald;
let sdk;
let relay;
let site;
let browser;

// The page: pusher-js's minified web build as a classic script, the plugin as ES modules.
function pageHtml() {
  return `<!doctype html><meta charset="utf-8"><title>recovery</title>
<script src="/pusher.js"></script>
<script type="module">
  import { withRecovery, webStorage } from '/plugin/index.js';
  const q = new URLSearchParams(location.search);
  window.received = [];
  window.recovered = [];
  const port = Number(q.get('port'));
  const transport = q.get('transport') || 'ws';
  const pusher = new Pusher(q.get('key'), {
    cluster: 'mt1', wsHost: '127.0.0.1', wsPort: port, httpHost: '127.0.0.1', httpPort: port,
    forceTLS: false, enabledTransports: [transport], enableStats: false,
  });
  withRecovery(pusher, {
    channels: 'orders-*',
    storage: webStorage(sessionStorage),
    onRecovered: (channel, info) => window.recovered.push(info),
  });
  pusher.subscribe(q.get('channel')).bind('order-updated', (data) => window.received.push(data.n));
  window.pusher = pusher;
</script>`;
}

function serve(req, res) {
  const path = new URL(req.url, 'http://x').pathname;
  let body;
  let type = 'text/javascript';
  if (path === '/') [body, type] = [pageHtml(), 'text/html'];
  else if (path === '/pusher.js') body = readFileSync(PUSHER_WEB);
  else if (path.startsWith('/plugin/')) {
    const file = normalize(join(PLUGIN, path.slice('/plugin/'.length)));
    if (file.startsWith(PLUGIN) && file.endsWith('.js') && existsSync(file)) body = readFileSync(file);
  }
  if (body === undefined) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
}

before(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} missing: apt-get install chromium`);
  herald = await startHistoryHerald();
  sdk = serverSdk(herald);
  relay = await startRelay(herald.port);
  site = createServer(serve);
  await new Promise((resolve) => site.listen(0, '127.0.0.1', resolve));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
});
afterEach(() => relay.release());
after(async () => {
  await browser?.close();
  await relay?.close();
  await new Promise((resolve) => (site ? site.close(resolve) : resolve()));
  herald?.stop();
});

function pageUrl(channel, port, transport = 'ws') {
  const q = new URLSearchParams({ key: herald.app().key, port: String(port), channel, transport });
  return `http://127.0.0.1:${site.address().port}/?${q}`;
}

async function received(page, count) {
  await page.waitForFunction((n) => window.received.length >= n, count, WAIT);
  return page.evaluate(() => window.received);
}

/** Cuts the page's connection while events are published, then checks it got them all. */
async function cutAndRecover(page) {
  const channel = new URL(page.url()).searchParams.get('channel');
  await page.waitForFunction(() => window.recovered.length === 1, null, WAIT); // the anchor
  await publish(sdk, channel, 1, 2);
  await received(page, 2);

  relay.hold();
  relay.cut();
  await page.waitForFunction(() => window.pusher.connection.state === 'connecting', null, WAIT);
  await publish(sdk, channel, 3, 6);
  relay.release();
  await page.waitForFunction(() => window.recovered.length === 2, null, WAIT);
  await publish(sdk, channel, 7, 7);
  assert.deepEqual(await received(page, 7), [1, 2, 3, 4, 5, 6, 7]);
  assert.equal((await page.evaluate(() => window.recovered[1])).replayed, 4);
}

test('in Chromium, a cut connection recovers what it missed', async () => {
  const page = await browser.newPage();
  await page.goto(pageUrl(unique('orders-web-'), relay.port));
  await cutAndRecover(page);
  await page.close();
});

test('in Chromium without WebSocket, over xhr_streaming, a cut connection recovers what it missed', async () => {
  const page = await browser.newPage();
  await page.addInitScript(() => {
    delete window.WebSocket;
    window.WebSocket = undefined;
  });
  await page.goto(pageUrl(unique('orders-xhr-'), relay.port, 'xhr_streaming'));
  await cutAndRecover(page);
  assert.equal(await page.evaluate(() => window.pusher.connection.connection.transport.name), 'xhr_streaming');
  await page.close();
});

test('in Chromium, a reloaded page recovers from the position kept in sessionStorage', async () => {
  const channel = unique('orders-reload-');
  const page = await browser.newPage();
  await page.goto(pageUrl(channel, herald.port));
  await page.waitForFunction(() => window.recovered.length === 1, null, WAIT);
  await publish(sdk, channel, 1, 2);
  await received(page, 2);

  await page.goto('about:blank'); // the page and its connection are gone
  await publish(sdk, channel, 3, 5);
  await page.goto(pageUrl(channel, herald.port));
  await page.waitForFunction(() => window.recovered.length === 1, null, WAIT);
  const info = await page.evaluate(() => window.recovered[0]);
  assert.equal(info.replayed, 3, `recovered from the stored position ${info.since}`);
  await publish(sdk, channel, 6, 6);
  assert.deepEqual(await received(page, 4), [3, 4, 5, 6]);
  await page.close();
});
