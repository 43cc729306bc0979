// Last-Event-ID recovery on a history channel (docs/sse.md, docs/history.md) with the real
// clients: the browser's EventSource in headless Chromium, whose connection is cut by a TCP
// relay the test controls, reconnects by itself with the Last-Event-ID header and gets what
// it missed, once and in order; and curl, resumed with ?lastEventId= from the id it printed.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer } from 'node:net';
import { launchChromium } from './browser.mjs';
import { HOST, defaultApp, startHerald } from './herald.mjs';
import { serverSdk, unique, withTimeout, WAIT_MS } from './helpers.mjs';

const HISTORY = [{ channels: 'sse-orders-*', max_events: 100, max_age_seconds: 300 }];
let herald;
let sdk;
let browser;
let site;
let relay;

/** A TCP relay to herald on 127.0.0.1 whose open connections `cut()` destroys. */
async function startRelay(port) {
  const open = new Set();
  const server = createServer((client) => {
    const upstream = connect(port, HOST);
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('close', () => open.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise((res) => server.listen(0, HOST, res));
  return {
    port: server.address().port,
    cut: () => {
      for (const s of open) s.destroy();
    },
    close: () => {
      for (const s of open) s.destroy();
      return new Promise((r) => server.close(r));
    },
  };
}

before(async () => {
  herald = await startHerald({ apps: [defaultApp({ allowed_origins: ['*'], history: HISTORY })] });
  sdk = serverSdk(herald);
  relay = await startRelay(herald.port);
  const server = createHttpServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>sse</title><body>sse</body>');
  });
  await new Promise((res) => server.listen(0, HOST, res));
  site = { url: `http://${HOST}:${server.address().port}/`, close: () => new Promise((r) => server.close(r)) };
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await site?.close();
  await relay?.close();
  await herald?.stop();
});

/** Waits until the page has received `count` frames matching `event` on `channel`. */
async function framesInPage(page, event, channel, count) {
  const handle = await page.waitForFunction(
    ([event, channel, count]) => {
      const found = window.frames_.filter((f) => f.event === event && f.channel === channel);
      return found.length >= count && found;
    },
    [event, channel, count],
    { timeout: WAIT_MS },
  );
  return handle.jsonValue();
}

test('EventSource in Chromium, cut off mid-stream, reconnects with Last-Event-ID and misses nothing', async () => {
  const page = await browser.newPage();
  await page.goto(site.url);
  const channel = unique('sse-orders-');
  const url = `http://${HOST}:${relay.port}/app/${herald.app().key}/events?channels=${channel}`;
  await page.evaluate((url) => {
    window.frames_ = [];
    window.opens = 0;
    window.source = new EventSource(url);
    window.source.onopen = () => (window.opens += 1);
    window.source.onmessage = (e) => window.frames_.push({ ...JSON.parse(e.data), id: e.lastEventId });
  }, url);
  await framesInPage(page, 'herald:recovered', channel, 1); // the anchor
  await sdk.trigger(channel, 'e', '0');
  const [first] = await framesInPage(page, 'e', channel, 1);
  assert.equal(first.id, `${channel}=${first.position}`, 'the id names the channel and its position');

  relay.cut();
  await page.waitForFunction(() => window.source.readyState !== 1, null, { timeout: WAIT_MS });
  await sdk.trigger(channel, 'e', '1'); // while the browser waits its retry delay
  await sdk.trigger(channel, 'e', '2');
  await framesInPage(page, 'herald:recovered', channel, 2);
  await sdk.trigger(channel, 'e', '3');
  const events = await framesInPage(page, 'e', channel, 4);
  assert.deepEqual(
    events.map((f) => f.data),
    ['0', '1', '2', '3'],
  );
  assert.equal(await page.evaluate(() => window.opens), 2, 'EventSource reconnected once, by itself');
  const recovered = (await framesInPage(page, 'herald:recovered', channel, 2))[1];
  assert.equal(JSON.parse(recovered.data).replayed, 2);
  await page.evaluate(() => window.source.close());
  await page.close();
});

/** Runs curl on `url` and collects its output; `seen(text)` waits until it printed `text`. */
function curl(url) {
  const child = spawn('curl', ['-sSN', '--max-time', '30', url], { stdio: ['ignore', 'pipe', 'pipe'] });
  const state = { out: '', waiters: [] };
  child.stdout.on('data', (chunk) => {
    state.out += chunk.toString();
    for (const w of state.waiters) if (state.out.includes(w.text)) w.resolve();
  });
  const seen = (text) =>
    withTimeout(
      new Promise((resolve) => (state.out.includes(text) ? resolve() : state.waiters.push({ text, resolve }))),
      `curl output containing ${text}`,
    ).catch((e) => {
      throw new Error(`${e.message}; curl printed ${JSON.stringify(state.out)}`);
    });
  return { child, seen, output: () => state.out };
}

test('curl resumes a history channel with ?lastEventId= from the id it printed', async () => {
  const channel = unique('sse-orders-');
  const base = `http://${HOST}:${herald.port}/app/${herald.app().key}/events?channels=${channel}`;
  const first = curl(base);
  let id;
  try {
    await first.seen('"event":"herald:recovered"');
    await sdk.trigger(channel, 'e', 'seen');
    await first.seen('"data":"seen"');
    id = [...first.output().matchAll(/^id: (.*)$/gm)].pop()[1];
  } finally {
    first.child.kill();
  }
  await sdk.trigger(channel, 'e', 'missed');
  const second = curl(`${base}&lastEventId=${encodeURIComponent(id)}`);
  try {
    await second.seen('"event":"herald:recovered"');
    const out = second.output();
    assert.ok(out.includes('"data":"missed"'), out);
    assert.ok(!out.includes('"data":"seen"'), 'what it saw is not sent again');
    assert.ok(out.indexOf('"data":"missed"') < out.indexOf('"event":"herald:recovered"'), 'replay first');
  } finally {
    second.child.kill();
  }
});
