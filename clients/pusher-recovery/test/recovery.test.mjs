// withRecovery on the real pusher-js (Node build) against the real herald binary: a relay
// between them takes the network away while the Pusher Node SDK keeps publishing, and the app's
// ordinary `channel.bind` callbacks must see every event exactly once and in order.

import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { isPosition, comparePositions, withRecovery } from '../index.js';
import {
  Calls,
  EVENT,
  Inbox,
  MAX_EVENTS,
  Publisher,
  cleanup,
  cutAway,
  disconnect,
  newPusher,
  publish,
  range,
  sdkAuthorizer,
  serverSdk,
  startHistoryHerald,
  startRelay,
  subscribeInto,
  unique,
  withTimeout,
} from './support/harness.mjs';

let herald;
let sdk;
const relays = [];

before(async () => {
  herald = await startHistoryHerald();
  sdk = serverSdk(herald);
});
afterEach(async () => {
  await cleanup();
  await Promise.all(relays.splice(0).map((r) => r.close()));
});
after(() => herald?.stop());

/** A pusher-js client that reaches herald through a relay the test can cut. */
async function clientBehindRelay(extra = {}) {
  const relay = await startRelay(herald.port);
  relays.push(relay);
  return { relay, pusher: newPusher(herald, { wsPort: relay.port, ...extra }) };
}

test('a connection cut mid-stream gets every event exactly once and in order', async () => {
  const channel = unique('orders-stream-');
  const { relay, pusher } = await clientBehindRelay();
  const recovered = new Calls();
  withRecovery(pusher, { onRecovered: recovered.fn });
  const inbox = new Inbox();
  await subscribeInto(pusher, channel, inbox);
  const socketBefore = pusher.connection.socket_id;
  const sent = []; // what this client sends, in order (pusher-js and the plugin both send through send_event)
  const sendEvent = pusher.send_event;
  pusher.send_event = function (name, data) {
    sent.push({ name, channel: data?.channel });
    return sendEvent.apply(this, arguments);
  };

  const publisher = new Publisher(sdk, channel);
  await publisher.allow(10);
  await inbox.until(10);
  const flowing = publisher.allow(40); // still publishing when the connection is cut
  await inbox.until(15);
  await cutAway(relay, pusher);
  await flowing;
  await publisher.allow(60); // 41..60 certainly while the client is away
  const resent = sent.length;
  relay.release();
  const live = publisher.allow(100); // and more while it reconnects and resubscribes

  const [name, info] = await recovered.next('herald:recovered after the reconnection');
  assert.equal(name, channel);
  assert.ok(isPosition(info.since), `recovered from a position, not ${info.since}`);
  assert.ok(info.replayed >= 20, `at least 41..60 replayed, got ${info.replayed}`);
  assert.notEqual(pusher.connection.socket_id, socketBefore, 'a new connection');
  assert.deepEqual(
    sent.slice(resent).filter((s) => s.channel === channel).map((s) => s.name),
    ['herald:recover', 'pusher:subscribe'],
    'the request goes before the resubscription',
  );

  await live;
  await inbox.until(100);
  assert.deepEqual(inbox.ns, range(1, 100));
  assert.equal(recovered.calls.length, 1, 'one recovery');
});

test('a private channel recovers through its authorizer', async () => {
  const channel = unique('private-orders-');
  const { relay, pusher } = await clientBehindRelay({
    channelAuthorization: { customHandler: sdkAuthorizer(sdk) },
  });
  const recovered = new Calls();
  withRecovery(pusher, { channels: 'private-orders-*', onRecovered: recovered.fn });
  const inbox = new Inbox();
  await subscribeInto(pusher, channel, inbox);
  const [, anchor] = await recovered.next('the anchor of the first subscription');
  assert.equal(anchor.since, 'latest');

  await publish(sdk, channel, 1, 5);
  await inbox.until(5);
  await cutAway(relay, pusher);
  await publish(sdk, channel, 6, 12);
  relay.release();
  const [, info] = await recovered.next('herald:recovered after the reconnection');
  assert.equal(info.replayed, 7);
  await publish(sdk, channel, 13, 15);
  await inbox.until(15);
  assert.deepEqual(inbox.ns, range(1, 15));
});

test('the first subscription anchors with "latest", so a cut before any event loses nothing', async () => {
  const channel = unique('orders-anchor-');
  const { relay, pusher } = await clientBehindRelay();
  const recovered = new Calls();
  const recovery = withRecovery(pusher, { channels: ['invoices-*', 'orders-*'], onRecovered: recovered.fn });
  const inbox = new Inbox();
  await subscribeInto(pusher, channel, inbox);

  const [name, anchor] = await recovered.next('the anchor');
  assert.equal(name, channel);
  assert.deepEqual(anchor, { since: 'latest', replayed: 0, position: anchor.position });
  assert.ok(isPosition(anchor.position), 'an empty channel has a position too');
  assert.equal(recovery.position(channel), anchor.position);
  assert.deepEqual(inbox.ns, [], 'no event yet');

  await cutAway(relay, pusher);
  await publish(sdk, channel, 1, 5);
  relay.release();
  const [, info] = await recovered.next('herald:recovered after the reconnection');
  assert.deepEqual(info.since, anchor.position);
  assert.equal(info.replayed, 5);
  await publish(sdk, channel, 6, 6);
  await inbox.until(6);
  assert.deepEqual(inbox.ns, range(1, 6));
});

test('a gap beyond max_events calls onRecoveryFailed, and the channel keeps working', async () => {
  const channel = unique('orders-gap-');
  const { relay, pusher } = await clientBehindRelay();
  const recovered = new Calls();
  const failed = new Calls();
  const recovery = withRecovery(pusher, { onRecovered: recovered.fn, onRecoveryFailed: failed.fn });
  const inbox = new Inbox();
  await subscribeInto(pusher, channel, inbox);
  await publish(sdk, channel, 1, 1);
  await inbox.until(1);
  const seen = recovery.position(channel);
  assert.ok(isPosition(seen));

  await cutAway(relay, pusher);
  const missed = MAX_EVENTS + 100; // more than herald keeps: event 2 is gone
  for (let n = 2; n <= missed + 1; n += 100) {
    const batch = range(n, Math.min(n + 99, missed + 1)).map((k) => ({ channel, name: EVENT, data: { n: k } }));
    await sdk.triggerBatch(batch);
  }
  relay.release();

  const [name, info] = await failed.next('herald:recovery_failed');
  assert.equal(name, channel);
  assert.equal(info.since, seen);
  assert.ok(info.reason.length > 0, 'herald says why');
  // Re-anchored at once, so a later cut can recover again.
  const [, anchor] = await recovered.next('the re-anchor after the failure');
  assert.equal(anchor.since, 'latest');
  assert.ok(comparePositions(recovery.position(channel), seen) > 0);

  await publish(sdk, channel, missed + 2, missed + 2);
  await inbox.until(2);
  assert.deepEqual(inbox.ns, [1, missed + 2], 'nothing replayed, the channel live');

  await cutAway(relay, pusher);
  await publish(sdk, channel, missed + 3, missed + 4);
  relay.release();
  const [, again] = await recovered.next('a recovery after the re-anchor');
  assert.equal(again.replayed, 2);
  await inbox.until(4);
  assert.deepEqual(inbox.ns, [1, missed + 2, missed + 3, missed + 4]);
});

test('detach() restores pusher-js: no more recovery, methods back to the prototype', async () => {
  const channel = unique('orders-detach-');
  const { relay, pusher } = await clientBehindRelay();
  const proto = Object.getPrototypeOf(pusher);
  const recovered = new Calls();
  const recovery = withRecovery(pusher, { channels: 'orders-*', onRecovered: recovered.fn });
  for (const m of ['subscribe', 'subscribeAll', 'unsubscribe']) assert.notEqual(pusher[m], proto[m]);
  const inbox = new Inbox();
  await subscribeInto(pusher, channel, inbox);
  await recovered.next('the anchor');
  await publish(sdk, channel, 1, 1);
  await inbox.until(1);

  recovery.detach();
  for (const m of ['subscribe', 'subscribeAll', 'unsubscribe']) {
    assert.equal(pusher[m], proto[m], `${m} is pusher-js's again`);
    assert.ok(!Object.hasOwn(pusher, m), `${m} is no own property any more`);
  }
  const frames = pusher.rec.messages.length;
  await cutAway(relay, pusher);
  await publish(sdk, channel, 2, 4); // lost, as with stock pusher-js
  const resubscribed = new Promise((resolve) => pusher.channel(channel).bind('pusher:subscription_succeeded', resolve));
  relay.release();
  await withTimeout(resubscribed, 'the resubscription');
  await publish(sdk, channel, 5, 5);
  await inbox.until(2);
  assert.deepEqual(inbox.ns, [1, 5]);
  const later = pusher.rec.messages.slice(frames).map((m) => m.event);
  assert.ok(!later.some((e) => e.startsWith('herald:')), `no recovery frames: ${later}`);
  assert.equal(recovered.calls.length, 1, 'only the anchor from before detach()');
  withRecovery(pusher).detach(); // detached instances may be wrapped again
});

test('storage keeps positions for a new client (a page reload), unsubscribe forgets them', async () => {
  const channel = unique('orders-stored-');
  const kept = new Map();
  const storage = { get: (c) => kept.get(c), set: (c, p) => (p === null ? kept.delete(c) : kept.set(c, p)) };

  const first = newPusher(herald);
  const one = withRecovery(first, { storage });
  const inbox1 = new Inbox();
  await subscribeInto(first, channel, inbox1);
  await publish(sdk, channel, 1, 2);
  await inbox1.until(2);
  assert.equal(kept.get(channel), one.position(channel));
  await disconnect(first);

  await publish(sdk, channel, 3, 4); // while no client is there
  const second = newPusher(herald);
  const recovered = new Calls();
  const two = withRecovery(second, { storage, onRecovered: recovered.fn });
  const inbox2 = new Inbox();
  await subscribeInto(second, channel, inbox2);
  const [, info] = await recovered.next('herald:recovered from the stored position');
  assert.equal(info.replayed, 2);
  await publish(sdk, channel, 5, 5);
  await inbox2.until(3);
  assert.deepEqual(inbox2.ns, [3, 4, 5]);
  assert.equal(kept.get(channel), two.position(channel));

  second.unsubscribe(channel);
  assert.equal(kept.has(channel), false);
  assert.equal(two.position(channel), null);
});

test('wrapping a client already subscribed anchors its channels at once', async () => {
  const channel = unique('orders-late-');
  const { relay, pusher } = await clientBehindRelay();
  const inbox = new Inbox();
  await subscribeInto(pusher, channel, inbox);
  await publish(sdk, channel, 1, 1);
  await inbox.until(1);

  const recovered = new Calls();
  const recovery = withRecovery(pusher, { channels: 'orders-*', onRecovered: recovered.fn });
  const [, anchor] = await recovered.next('the anchor of the subscribed channel');
  assert.equal(anchor.since, 'latest');
  assert.equal(recovery.position(channel), anchor.position);

  await cutAway(relay, pusher);
  await publish(sdk, channel, 2, 3);
  relay.release();
  const [, info] = await recovered.next('herald:recovered after the reconnection');
  assert.equal(info.replayed, 2);
  await publish(sdk, channel, 4, 4);
  await inbox.until(4);
  assert.deepEqual(inbox.ns, range(1, 4));
});

test('withRecovery refuses what is not a pusher-js instance, bad options and a second wrap', async () => {
  const pusher = newPusher(herald);
  assert.throws(() => withRecovery({}), TypeError);
  assert.throws(() => withRecovery(pusher, { onRecovered: 'no' }), TypeError);
  assert.throws(() => withRecovery(pusher, { storage: {} }), TypeError);
  assert.throws(() => withRecovery(pusher, { channels: [''] }), TypeError);
  const recovery = withRecovery(pusher);
  assert.throws(() => withRecovery(pusher), /wrapped already/);
  recovery.detach();
  recovery.detach(); // twice is harmless
});
