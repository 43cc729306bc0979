// pusher-js 8 + the Node server SDK 5 on public channels: handshake, trigger, triggerBatch,
// socket_id exclusion, subscription counting, refused connections.

import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultApp, startHerald } from './herald.mjs';
import {
  cleanup,
  connectPusher,
  newPusher,
  nextEvent,
  serverSdk,
  subscribe,
  unique,
  withTimeout,
} from './helpers.mjs';

let herald;
let sdk;

before(async () => {
  herald = await startHerald({
    apps: [
      defaultApp({ activity_timeout_seconds: 30 }),
      defaultApp({ id: '777', key: 'disabled-key', secret: 'disabled-secret', enabled: false }),
    ],
  });
  sdk = serverSdk(herald);
});
afterEach(cleanup);
after(() => herald?.stop());

test('pusher-js connects and gets a Pusher-shaped socket_id', async () => {
  const pusher = await connectPusher(herald);
  assert.match(pusher.connection.socket_id, /^\d+\.\d+$/);
  // pusher-js took the handshake's activity_timeout (the app's 30 s) over its own default (120 s).
  assert.equal(pusher.connection.activityTimeout, 30_000);
});

test('two clients get different socket ids', async () => {
  const [a, b] = await Promise.all([connectPusher(herald), connectPusher(herald)]);
  assert.notEqual(a.connection.socket_id, b.connection.socket_id);
});

test('public channel receives an event triggered with the Node SDK', async () => {
  const pusher = await connectPusher(herald);
  const name = unique('orders-');
  const channel = await subscribe(pusher, name);
  const got = nextEvent(channel, 'order-created');
  const res = await sdk.trigger(name, 'order-created', { id: 1, note: 'héllo / "quoted"' });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {});
  const { data } = await got;
  assert.deepEqual(data, { id: 1, note: 'héllo / "quoted"' });
  // On the wire data is a JSON string (pusher-js decoded it).
  const frame = pusher.rec.events('order-created', name)[0];
  assert.ok(frame);
});

test('a string payload arrives unchanged', async () => {
  const pusher = await connectPusher(herald);
  const name = unique('plain-');
  const channel = await subscribe(pusher, name);
  const got = nextEvent(channel, 'text');
  await sdk.trigger(name, 'text', 'just words, not JSON');
  assert.equal((await got).data, 'just words, not JSON');
});

test('Laravel-style event names with backslashes and dots are delivered', async () => {
  const pusher = await connectPusher(herald);
  const name = unique('laravel-');
  const channel = await subscribe(pusher, name);
  const got = nextEvent(channel, 'App\\Events\\Order.Shipped');
  await sdk.trigger(name, 'App\\Events\\Order.Shipped', { order: 7 });
  assert.deepEqual((await got).data, { order: 7 });
});

test('one trigger to several channels reaches each subscriber', async () => {
  const [a, b] = await Promise.all([connectPusher(herald), connectPusher(herald)]);
  const ca = unique('multi-a-');
  const cb = unique('multi-b-');
  const [chA, chB] = await Promise.all([subscribe(a, ca), subscribe(b, cb)]);
  const gotA = nextEvent(chA, 'fanout');
  const gotB = nextEvent(chB, 'fanout');
  await sdk.trigger([ca, cb, unique('nobody-')], 'fanout', { n: 3 });
  assert.deepEqual((await gotA).data, { n: 3 });
  assert.deepEqual((await gotB).data, { n: 3 });
});

test('triggerBatch delivers every event of the batch in order', async () => {
  const pusher = await connectPusher(herald);
  const c1 = unique('batch-1-');
  const c2 = unique('batch-2-');
  await Promise.all([subscribe(pusher, c1), subscribe(pusher, c2)]);
  const res = await sdk.triggerBatch([
    { channel: c1, name: 'first', data: { i: 1 } },
    { channel: c2, name: 'second', data: JSON.stringify({ i: 2 }) },
    { channel: c1, name: 'third', data: { i: 3 } },
  ]);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {});
  await pusher.rec.waitEvent('third', c1);
  await pusher.rec.waitEvent('second', c2);
  const onC1 = pusher.rec.messages.filter((m) => m.channel === c1 && !m.event.startsWith('pusher'));
  assert.deepEqual(
    onC1.map((m) => [m.event, m.data]),
    [
      ['first', { i: 1 }],
      ['third', { i: 3 }],
    ],
  );
  assert.deepEqual(pusher.rec.events('second', c2)[0].data, { i: 2 });
});

test('trigger with socket_id skips that connection only', async () => {
  const [sender, other] = await Promise.all([connectPusher(herald), connectPusher(herald)]);
  const name = unique('exclude-');
  await Promise.all([subscribe(sender, name), subscribe(other, name)]);
  await sdk.trigger(name, 'update', { v: 1 }, { socket_id: sender.connection.socket_id });
  await other.rec.waitEvent('update', name);
  // Sentinel after the excluded event: once it arrives, the excluded one would have too.
  await sdk.trigger(name, 'sentinel', {});
  await sender.rec.waitEvent('sentinel', name);
  assert.equal(sender.rec.events('update', name).length, 0, 'excluded socket must not receive the event');
  assert.equal(other.rec.events('update', name).length, 1);
});

test('unsubscribe stops delivery on that channel', async () => {
  const pusher = await connectPusher(herald);
  const gone = unique('gone-');
  const kept = unique('kept-');
  await Promise.all([subscribe(pusher, gone), subscribe(pusher, kept)]);
  pusher.unsubscribe(gone);
  // Once this later subscription is confirmed, the unsubscribe before it was processed.
  await subscribe(pusher, unique('fence-'));
  await sdk.trigger(gone, 'late', {});
  await sdk.trigger(kept, 'sentinel', {});
  await pusher.rec.waitEvent('sentinel', kept);
  assert.equal(pusher.rec.events('late').length, 0);
});

test('pusher-js sees subscription_count when the app counts subscriptions', async () => {
  const a = await connectPusher(herald);
  const name = unique('counted-');
  const chA = await subscribe(a, name);
  const one = await a.rec.waitFor(
    (m) => m.event === 'pusher_internal:subscription_count' && m.channel === name,
    'subscription_count 1',
  );
  assert.deepEqual(one.data, { subscription_count: 1 });
  const b = await connectPusher(herald);
  const countTwo = nextEvent(chA, 'pusher:subscription_count');
  await subscribe(b, name);
  assert.deepEqual((await countTwo).data, { subscription_count: 2 });
  assert.equal(chA.subscriptionCount, 2);
});

test('trigger with info=subscription_count reports the count', async () => {
  const [a, b] = await Promise.all([connectPusher(herald), connectPusher(herald)]);
  const name = unique('info-');
  await Promise.all([subscribe(a, name), subscribe(b, name)]);
  const res = await sdk.trigger(name, 'x', {}, { info: 'subscription_count' });
  assert.deepEqual(await res.json(), { channels: { [name]: { subscription_count: 2 } } });
});

/** The PusherError inside a pusher-js connection error (wrapped or not). */
function handshakeError(err) {
  const inner = err.type === 'WebSocketError' && err.error ? err.error : err;
  return { type: inner.type, code: inner.data?.code };
}

test('unknown app key: pusher-js gets error 4001 and gives up', async () => {
  const pusher = newPusher(herald, { app: { key: 'no-such-key' } });
  const err = await withTimeout(
    new Promise((resolve) => pusher.connection.bind('error', resolve)),
    'a connection error for an unknown key',
  );
  // pusher-js wraps the handshake's pusher:error: {type:'WebSocketError', error:{type:'PusherError', data}}.
  assert.deepEqual(handshakeError(err), { type: 'PusherError', code: 4001 });
  await withTimeout(
    new Promise((resolve) => {
      if (pusher.connection.state === 'disconnected') resolve();
      pusher.connection.bind('disconnected', resolve);
    }),
    'pusher-js to stop (refused, no reconnect)',
  );
});

test('disabled app: pusher-js gets error 4003', async () => {
  const pusher = newPusher(herald, { app: herald.app('777') });
  const err = await withTimeout(
    new Promise((resolve) => pusher.connection.bind('error', resolve)),
    'a connection error for a disabled app',
  );
  assert.deepEqual(handshakeError(err), { type: 'PusherError', code: 4003 });
});
