// Server-Sent Events (GET /app/{key}/events, docs/sse.md) with the clients that use them:
// the browser's own EventSource in headless Chromium (Debian's, driven by playwright-core) on
// a page from another origin, receiving events the Node SDK triggers, on a public channel and
// on a private one whose token the page gets from its app's auth endpoint (the SDK's
// authorizeChannel); and `curl -N`.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { launchChromium } from './browser.mjs';
import { HOST, defaultApp, startHerald } from './herald.mjs';
import { serverSdk, unique, withTimeout, WAIT_MS } from './helpers.mjs';

let herald;
let sdk;
let browser;
let site;

/**
 * The app's own site on another port (so another origin than herald): `/` is an empty page,
 * `POST /broadcasting/auth` signs `socket_id:channel_name` with the SDK, as Laravel's does.
 */
async function startSite() {
  const server = createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/broadcasting/auth') {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const form = new URLSearchParams(body);
        const auth = sdk.authorizeChannel(form.get('socket_id'), form.get('channel_name'));
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(auth));
      });
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>sse</title><body>sse</body>');
  });
  await new Promise((res) => server.listen(0, HOST, res));
  return { url: `http://${HOST}:${server.address().port}/`, close: () => new Promise((r) => server.close(r)) };
}

before(async () => {
  // Origins match by host: the site and herald are both on 127.0.0.1, on different ports.
  // The second app allows any origin, and so requests without one (curl's).
  const open = defaultApp({ id: '777', key: 'open-key', secret: 'open-secret' });
  herald = await startHerald({ apps: [defaultApp({ allowed_origins: [HOST] }), open] });
  sdk = serverSdk(herald);
  site = await startSite();
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await site?.close();
  await herald?.stop();
});

function eventsUrl(query, app = herald.app()) {
  return `http://${HOST}:${herald.port}/app/${app.key}/events?${query}`;
}

/** Opens an EventSource in the page; every frame it receives is pushed to `window.frames_`. */
async function openInPage(page, url) {
  await page.evaluate((url) => {
    window.frames_ = [];
    window.source = new EventSource(url);
    window.source.onmessage = (e) => window.frames_.push(JSON.parse(e.data));
  }, url);
}

/** Waits until the page's EventSource received a frame matching `{event, channel}`. */
async function waitInPage(page, event, channel) {
  const handle = await page.waitForFunction(
    ([event, channel]) => window.frames_.find((f) => f.event === event && (!channel || f.channel === channel)),
    [event, channel],
    { timeout: WAIT_MS },
  );
  return handle.jsonValue();
}

/** Polls the HTTP API until `channel` is (un)occupied; bounded by WAIT_MS. */
async function untilOccupied(channel, occupied) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const res = await sdk.get({ path: `/channels/${channel}` });
    if ((await res.json()).occupied === occupied) return;
    if (Date.now() > deadline) throw new Error(`${channel} did not become occupied=${occupied}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('EventSource in Chromium receives an event the Node SDK triggers on a public channel', async () => {
  const page = await browser.newPage();
  await page.goto(site.url);
  const channel = unique('sse-public-');
  await openInPage(page, eventsUrl(`channels=${channel}`));
  const established = await waitInPage(page, 'pusher:connection_established');
  assert.match(JSON.parse(established.data).socket_id, /^\d+\.\d+$/);
  await waitInPage(page, 'pusher_internal:subscription_succeeded', channel);
  await sdk.trigger(channel, 'order-shipped', { id: 42 });
  const event = await waitInPage(page, 'order-shipped', channel);
  assert.deepEqual(JSON.parse(event.data), { id: 42 });
  assert.equal(await page.evaluate(() => window.source.readyState), 1, 'EventSource OPEN');
  // Closing the EventSource leaves the channel.
  await page.evaluate(() => window.source.close());
  await untilOccupied(channel, false);
  await page.close();
});

test('EventSource in Chromium subscribes to a private channel with a token from the auth endpoint', async () => {
  const page = await browser.newPage();
  await page.goto(site.url);
  const channel = unique('private-sse-');
  await page.evaluate(
    async ({ channel, eventsBase }) => {
      // The client picks its own socket id, has the app sign it, then connects.
      const socketId = `${1 + Math.floor(Math.random() * 1e9)}.${Math.floor(Math.random() * 1e9)}`;
      const res = await fetch('/broadcasting/auth', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ socket_id: socketId, channel_name: channel }),
      });
      const { auth } = await res.json();
      const query = new URLSearchParams({ channels: channel, socket_id: socketId, auth });
      window.socketId = socketId;
      window.frames_ = [];
      window.source = new EventSource(`${eventsBase}?${query}`);
      window.source.onmessage = (e) => window.frames_.push(JSON.parse(e.data));
    },
    { channel, eventsBase: eventsUrl('').slice(0, -1) },
  );
  const established = await waitInPage(page, 'pusher:connection_established');
  assert.equal(JSON.parse(established.data).socket_id, await page.evaluate(() => window.socketId));
  await waitInPage(page, 'pusher_internal:subscription_succeeded', channel);
  await sdk.trigger(channel, 'secret-plans', { step: 1 });
  const event = await waitInPage(page, 'secret-plans', channel);
  assert.deepEqual(JSON.parse(event.data), { step: 1 });
  await page.evaluate(() => window.source.close());
  await page.close();
});

test('a private channel with a forged token is refused with 401 JSON', async () => {
  const channel = unique('private-sse-');
  const query = new URLSearchParams({ channels: channel, socket_id: '1.2', auth: `${herald.app().key}:forged` });
  const res = await fetch(eventsUrl(query.toString()), { headers: { origin: site.url.slice(0, -1) } });
  assert.equal(res.status, 401);
  assert.equal(res.headers.get('access-control-allow-origin'), site.url.slice(0, -1));
  assert.match((await res.json()).error, /Invalid signature/);
});

test('curl -N receives an event the Node SDK triggers', async () => {
  const channel = unique('sse-curl-');
  const app = herald.app('777');
  const curl = spawn('curl', ['-sSN', '--max-time', '30', eventsUrl(`channels=${channel}`, app)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const waiters = [];
  curl.stdout.on('data', (chunk) => {
    out += chunk.toString();
    for (const w of waiters) if (out.includes(w.text)) w.resolve();
  });
  const seen = (text) =>
    withTimeout(
      new Promise((resolve) => (out.includes(text) ? resolve() : waiters.push({ text, resolve }))),
      `curl output containing ${text}`,
    ).catch((e) => {
      throw new Error(`${e.message}; curl printed ${JSON.stringify(out)}`);
    });
  try {
    await seen(`"event":"pusher_internal:subscription_succeeded","channel":"${channel}"`);
    await serverSdk(herald, app).trigger(channel, 'from-curl', 'hello');
    const line = `data: {"event":"from-curl","channel":"${channel}","data":"hello"}\n\n`;
    await seen(line);
    assert.match(out, /^retry: 1000\n\ndata: \{"event":"pusher:connection_established"/);
  } finally {
    curl.kill();
  }
});
