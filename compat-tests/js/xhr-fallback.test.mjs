// pusher-js's HTTP fallback transports in a real browser: headless Chromium (Debian's, driven by
// playwright-core) loads pusher-js's web build from a page served on 127.0.0.1 (another origin
// than herald's, so every request is a CORS request), with WebSocket removed from the page so
// pusher-js must fall back. Once with `enabledTransports: ['xhr_streaming']`, once with
// `['xhr_polling']`: connect, a public event from the Node SDK, private channels authorized by
// the page's authEndpoint (signed with the SDK's authorizeChannel), presence, and client
// events between two browser clients, and more than pusher-js reads from one streaming response.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { launchChromium } from './browser.mjs';
import { HOST, REPO_ROOT, startHerald } from './herald.mjs';
import { serverSdk, unique, WAIT_MS } from './helpers.mjs';

const PUSHER_JS = join(REPO_ROOT, 'compat-tests', 'node_modules', 'pusher-js', 'dist', 'web', 'pusher.js');

// The page's helpers: every wait is a promise with a deadline, armed before what it waits for.
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><script src="/pusher.js"></script></head><body><script>
  const WAIT_MS = ${WAIT_MS};
  window.pending = {};
  function deadline(promise, what) {
    return Promise.race([promise, new Promise((_, reject) =>
      setTimeout(() => reject(new Error('timed out waiting for ' + what)), WAIT_MS))]);
  }
  window.connect = (key, options) => {
    window.client = new Pusher(key, options);
    return deadline(new Promise((resolve) => {
      if (client.connection.state === 'connected') return resolve();
      client.connection.bind('state_change', ({ current }) => current === 'connected' && resolve());
    }), 'the connection').then(() => ({
      transport: client.connection.connection.transport.name,
      socketId: client.connection.socket_id,
    }));
  };
  // A key herald refuses: the connection error pusher-js reports, once it has given up.
  window.refused = (key, options) => {
    window.client = new Pusher(key, options);
    const error = new Promise((resolve) => client.connection.bind('error', (e) => {
      const inner = e.type === 'WebSocketError' && e.error ? e.error : e;
      resolve({ type: inner.type, code: inner.data && inner.data.code });
    }));
    const stopped = new Promise((resolve) => client.connection.bind('disconnected', resolve));
    return deadline(Promise.all([error, stopped]), 'the refusal').then(([e]) => ({ ...e, state: client.connection.state }));
  };
  window.subscribe = (name) => deadline(new Promise((resolve, reject) => {
    const channel = client.subscribe(name);
    channel.bind('pusher:subscription_succeeded', (members) => resolve(members && members.count !== undefined
      ? { count: members.count, ids: Object.keys(members.members).sort(), me: members.me.id } : {}));
    channel.bind('pusher:subscription_error', (e) => reject(new Error('subscription_error ' + JSON.stringify(e))));
  }), 'subscription_succeeded on ' + name);
  window.arm = (key, channelName, event) => {
    pending[key] = deadline(new Promise((resolve) => {
      const channel = client.channel(channelName);
      const once = (data) => { channel.unbind(event, once); resolve(data); };
      channel.bind(event, once);
    }), event + ' on ' + channelName);
  };
  window.collect = (key, channelName, event, count) => {
    const got = [];
    pending[key] = deadline(new Promise((resolve) => {
      client.channel(channelName).bind(event, (data) => { got.push(data.n); if (got.length === count) resolve(got); });
    }), count + ' x ' + event + ' on ' + channelName);
  };
  window.trigger = (channelName, event, data) => client.channel(channelName).trigger(event, data);
</script></body></html>`;

let herald;
let browser;
let page;
let sdk;

/** Serves the page, pusher-js's web build and the app's authEndpoint on 127.0.0.1. */
async function startPageServer() {
  const script = readFileSync(PUSHER_JS);
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      return res.end(PAGE);
    }
    if (req.method === 'GET' && req.url === '/pusher.js') {
      res.writeHead(200, { 'content-type': 'application/javascript' });
      return res.end(script);
    }
    if (req.method === 'POST' && req.url === '/pusher/auth') {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const form = new URLSearchParams(body);
        const [socketId, channel, user] = ['socket_id', 'channel_name', 'user'].map((k) => form.get(k));
        const presence = channel.startsWith('presence-') ? { user_id: user, user_info: { name: user } } : undefined;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(sdk.authorizeChannel(socketId, channel, presence)));
      });
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise((resolve) => server.listen(0, HOST, resolve));
  return { url: `http://${HOST}:${server.address().port}/`, close: () => new Promise((r) => server.close(r)) };
}

before(async () => {
  if (!existsSync(PUSHER_JS)) throw new Error(`${PUSHER_JS} missing: npm ci in compat-tests`);
  herald = await startHerald();
  sdk = serverSdk(herald);
  page = await startPageServer();
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await page?.close();
  await herald?.stop();
});

/** pusher-js options for herald's HTTP transports: only `transport`, WebSocket absent anyway. */
function options(transport, user) {
  return {
    cluster: 'mt1',
    httpHost: HOST,
    httpPort: herald.port,
    httpsPort: herald.port,
    forceTLS: false,
    enabledTransports: [transport],
    enableStats: false,
    authEndpoint: '/pusher/auth',
    auth: { params: { user } },
  };
}

/** A page (its own context) without WebSocket, loaded from the page server. */
async function browserPage(user) {
  const context = await browser.newContext();
  await context.addInitScript(() => {
    delete window.WebSocket;
    window.WebSocket = undefined;
  });
  const urls = [];
  context.on('request', (r) => urls.push(r.url()));
  const tab = await context.newPage();
  tab.on('pageerror', (e) => process.stderr.write(`page error (${user}): ${e}\n`));
  await tab.goto(page.url);
  assert.equal(await tab.evaluate(() => typeof window.WebSocket), 'undefined', 'WebSocket is gone from the page');
  /** How many requests of this kind (`xhr_streaming`, `xhr`, `xhr_send`) the page made. */
  const requests = (kind) => urls.filter((u) => new URL(u).pathname.endsWith(`/${kind}`)).length;
  return { tab, context, requests };
}

/** A browser client connected over `transport` as `user`. */
async function browserClient(transport, user) {
  const client = await browserPage(user);
  const key = herald.app().key;
  const connected = await client.tab.evaluate(([k, o]) => window.connect(k, o), [key, options(transport, user)]);
  return { ...client, ...connected };
}

/** Arms a wait for `event` on `channel` in `tab`, runs `cause`, and returns the event's data. */
async function eventAfter(tab, channel, event, cause) {
  const key = unique('wait-');
  await tab.evaluate(([k, c, e]) => window.arm(k, c, e), [key, channel, event]);
  await cause();
  return tab.evaluate((k) => window.pending[k], key);
}

for (const transport of ['xhr_streaming', 'xhr_polling']) {
  test(`pusher-js over ${transport} without WebSocket: public, private, presence and client events`, async (t) => {
    const alice = await browserClient(transport, 'alice');
    const bob = await browserClient(transport, 'bob');
    t.after(() => Promise.all([alice.context.close(), bob.context.close()]));

    await t.test(`pusher-js reports ${transport} as its transport`, () => {
      assert.equal(alice.transport, transport);
      assert.equal(bob.transport, transport);
      assert.match(alice.socketId, /^\d+\.\d+$/);
    });

    await t.test('a public channel receives an event triggered with the Node SDK', async () => {
      const channel = unique('news-');
      await alice.tab.evaluate((c) => window.subscribe(c), channel);
      const data = await eventAfter(alice.tab, channel, 'headline', () => sdk.trigger(channel, 'headline', { n: 1 }));
      assert.deepEqual(data, { n: 1 });
    });

    await t.test('private channels authorized by the authEndpoint carry client events both ways', async () => {
      const channel = unique('private-room-');
      await alice.tab.evaluate((c) => window.subscribe(c), channel);
      await bob.tab.evaluate((c) => window.subscribe(c), channel);
      const trigger = (tab, data) => () => tab.evaluate(([c, d]) => window.trigger(c, 'client-note', d), [channel, data]);
      assert.deepEqual(await eventAfter(bob.tab, channel, 'client-note', trigger(alice.tab, { from: 'alice' })), { from: 'alice' });
      assert.deepEqual(await eventAfter(alice.tab, channel, 'client-note', trigger(bob.tab, { from: 'bob' })), { from: 'bob' });
    });

    await t.test('presence: the roster, and member_added for a second client', async () => {
      const channel = unique('presence-lobby-');
      const first = await alice.tab.evaluate((c) => window.subscribe(c), channel);
      assert.deepEqual(first, { count: 1, ids: ['alice'], me: 'alice' });
      const added = await eventAfter(alice.tab, channel, 'pusher:member_added', async () => {
        const second = await bob.tab.evaluate((c) => window.subscribe(c), channel);
        assert.deepEqual(second, { count: 2, ids: ['alice', 'bob'], me: 'bob' });
      });
      assert.deepEqual(added, { id: 'bob', info: { name: 'bob' } });
    });

    await t.test('more than pusher-js reads from one response (256 KiB) arrives whole and in order', async () => {
      const channel = unique('bulk-');
      await alice.tab.evaluate((c) => window.subscribe(c), channel);
      const key = unique('bulk-wait-');
      const count = 40;
      await alice.tab.evaluate(([k, c, n]) => window.collect(k, c, 'chunk', n), [key, channel, count]);
      const streamsBefore = alice.requests('xhr_streaming');
      const pad = 'x'.repeat(8_000);
      for (let n = 0; n < count; n++) await sdk.trigger(channel, 'chunk', { n, pad });
      const got = await alice.tab.evaluate((k) => window.pending[k], key);
      assert.deepEqual(got, [...Array(count).keys()]);
      if (transport === 'xhr_streaming') {
        assert.ok(alice.requests('xhr_streaming') > streamsBefore, 'pusher-js opened a new streaming response');
      }
    });

    await t.test('the connection is still on the same transport and session', async () => {
      const now = await alice.tab.evaluate(() => ({
        state: window.client.connection.state,
        transport: window.client.connection.connection.transport.name,
        socketId: window.client.connection.socket_id,
      }));
      assert.deepEqual(now, { state: 'connected', transport, socketId: alice.socketId });
    });
  });
}

for (const transport of ['xhr_streaming', 'xhr_polling']) {
  test(`pusher-js over ${transport}: an unknown app key gets 4001 and pusher-js gives up, as on a WebSocket`, async (t) => {
    const client = await browserPage('nobody');
    t.after(() => client.context.close());
    const refused = await client.tab.evaluate(([k, o]) => window.refused(k, o), ['no-such-key', options(transport, 'x')]);
    assert.deepEqual(refused, { type: 'PusherError', code: 4001, state: 'disconnected' });
  });
}
