// Channel history with stock clients (docs/history.md): pusher-js without any plugin asks for
// what it missed with `pusher.send_event('herald:recover', …)` and gets it through its normal
// `channel.bind` callbacks; a backend reads the history with the Pusher Node SDK's signed
// `get`. (The plugin that automates the client side has its own suite in clients/.)

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultApp, startHerald } from './herald.mjs';
import { cleanup, connectPusher, disconnect, nextEvent, serverSdk, subscribe, unique, waitConnected, withTimeout } from './helpers.mjs';

let herald;
let sdk;

before(async () => {
  const history = [{ channels: 'orders-*', max_events: 100, max_age_seconds: 300 }];
  herald = await startHerald({ apps: [defaultApp({ history })] });
  sdk = serverSdk(herald);
});
after(async () => {
  await cleanup();
  await herald?.stop();
});

/** Collects `name` events on `channel` into an array. */
function collect(channel, name) {
  const got = [];
  channel.bind(name, (data) => got.push(data));
  return got;
}

/** Resolves once `list` has `n` entries; bounded by the helpers' timeout. */
function until(list, n, what) {
  return withTimeout(
    new Promise((resolve) => {
      const check = setInterval(() => {
        if (list.length >= n) {
          clearInterval(check);
          resolve(list);
        }
      }, 10);
    }),
    what,
  );
}

test('stock pusher-js recovers what it missed with send_event and its own bind callbacks', async () => {
  const name = unique('orders-');
  const pusher = await connectPusher(herald);
  const channel = await subscribe(pusher, name);
  const events = collect(channel, 'order-updated');
  // An anchor: nothing is replayed, and herald:recovered names the position to come back to.
  const anchored = nextEvent(channel, 'herald:recovered');
  pusher.send_event('herald:recover', { channel: name, since: 'latest' });
  let position = (await anchored).data.position;
  assert.match(position, /^\d+-\d+$/);

  await sdk.trigger(name, 'order-updated', { n: 1 });
  await until(events, 1, 'the live event');
  await disconnect(pusher);
  await sdk.trigger(name, 'order-updated', { n: 2 });
  await sdk.trigger(name, 'order-updated', { n: 3 });

  // The app learns positions only from herald:recovered (pusher-js drops unknown fields), so
  // this one resumes from its anchor and gets 1 again: herald replays only what this
  // subscription did not bring, and the new subscription brought nothing yet.
  const recovered = nextEvent(channel, 'herald:recovered');
  pusher.connection.bind('connected', () => pusher.send_event('herald:recover', { channel: name, since: position }));
  pusher.connect();
  await waitConnected(pusher);
  const done = (await recovered).data;
  assert.equal(done.replayed, 3);
  assert.deepEqual(
    events.map((e) => e.n),
    [1, 1, 2, 3],
  );
  position = done.position;
  await sdk.trigger(name, 'order-updated', { n: 4 });
  await until(events, 5, 'the live event after the replay');
  assert.deepEqual(
    events.map((e) => e.n),
    [1, 1, 2, 3, 4],
  );
});

test('a gap older than the history reaches pusher-js as herald:recovery_failed', async () => {
  const name = unique('orders-');
  const pusher = await connectPusher(herald);
  const channel = await subscribe(pusher, name);
  const failed = nextEvent(channel, 'herald:recovery_failed');
  pusher.send_event('herald:recover', { channel: name, since: '1-1' });
  const { data } = await failed;
  assert.equal(data.since, '1-1');
  assert.match(data.reason, /not in the channel's history/);
});

test('a backend reads the history with the Pusher Node SDK', async () => {
  const name = unique('orders-');
  await sdk.trigger(name, 'order-updated', { n: 1 });
  await sdk.trigger(name, 'order-updated', { n: 2 });
  const res = await sdk.get({ path: `/channels/${name}/history` });
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.deepEqual(
    body.events.map((e) => JSON.parse(e.data).n),
    [1, 2],
  );
  const since = body.events[0].position;
  const after = await (await sdk.get({ path: `/channels/${name}/history`, params: { since } })).json();
  assert.deepEqual(
    after.events.map((e) => JSON.parse(e.data).n),
    [2],
  );
  // The SDK throws on a non-2xx answer: a channel without history is 404.
  await assert.rejects(sdk.get({ path: '/channels/news/history' }), (e) => e.status === 404);
});
