// Subscription counting (PROTOCOL.md §10) as pusher-js 8 sees it: `pusher:subscription_count`
// on the channel and `channel.subscriptionCount`, as other clients join, unsubscribe and
// disconnect; nothing for presence channels or for an app without counting.
// (public.test.mjs covers the first two counts; this file follows the count back down.)

import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultApp, startHerald } from './herald.mjs';
import { cleanup, connectPusher, disconnect, nextEvent, sdkAuthorizer, serverSdk, subscribe, unique } from './helpers.mjs';

let herald;
let sdk;

before(async () => {
  herald = await startHerald({
    apps: [defaultApp(), defaultApp({ id: '444', key: 'uncounted-key', secret: 'uncounted-secret', subscription_count: false })],
  });
  sdk = serverSdk(herald);
});
afterEach(cleanup);
after(() => herald?.stop());

/** Run `action`, then wait for the next `pusher:subscription_count` on `channel`; check its value. */
async function countAfter(channel, action, expected) {
  const next = nextEvent(channel, 'pusher:subscription_count');
  await action();
  const { data } = await next;
  assert.deepEqual(data, { subscription_count: expected });
  assert.equal(channel.subscriptionCount, expected);
}

test('the count follows a second and third client joining, unsubscribing and disconnecting', async () => {
  const [a, b, c] = await Promise.all([connectPusher(herald), connectPusher(herald), connectPusher(herald)]);
  const name = unique('count-updown-');
  const chA = a.subscribe(name);
  await countAfter(chA, async () => {}, 1);
  await countAfter(chA, () => subscribe(b, name), 2);
  await countAfter(chA, () => subscribe(c, name), 3);
  await countAfter(chA, async () => b.unsubscribe(name), 2);
  await countAfter(chA, () => disconnect(c), 1);
  // The remaining subscriber saw every count exactly once, in order.
  const counts = a.rec.events('pusher_internal:subscription_count', name).map((m) => m.data.subscription_count);
  assert.deepEqual(counts, [1, 2, 3, 2, 1]);
  // b resubscribes: it gets the current count too (sent to all subscribers, the new one included).
  const toA = nextEvent(chA, 'pusher:subscription_count');
  const chB = b.subscribe(name);
  await countAfter(chB, async () => {}, 2);
  assert.deepEqual((await toA).data, { subscription_count: 2 });
  assert.equal(chA.subscriptionCount, 2);
});

test('private channels are counted too; presence channels are not', async () => {
  const auth = {
    channelAuthorization: { customHandler: sdkAuthorizer(sdk, { presence: (_c, socketId) => ({ user_id: socketId }) }) },
  };
  const [a, b] = await Promise.all([connectPusher(herald, auth), connectPusher(herald, auth)]);
  const priv = unique('private-count-');
  const chA = a.subscribe(priv);
  await countAfter(chA, async () => {}, 1);
  await countAfter(chA, () => subscribe(b, priv), 2);

  const pres = unique('presence-count-');
  await subscribe(a, pres);
  await subscribe(b, pres);
  // Sentinel: an event on the presence channel after both joins.
  await sdk.trigger(pres, 'sentinel', {});
  await a.rec.waitEvent('sentinel', pres);
  assert.equal(a.rec.events('pusher_internal:subscription_count', pres).length, 0);
});

test('an app without subscription counting sends no counts', async () => {
  const app = herald.app('444');
  const [a, b] = await Promise.all([connectPusher(herald, { app }), connectPusher(herald, { app })]);
  const name = unique('uncounted-');
  const chA = await subscribe(a, name);
  await subscribe(b, name);
  await serverSdk(herald, app).trigger(name, 'sentinel', {});
  await a.rec.waitEvent('sentinel', name);
  assert.equal(a.rec.events('pusher_internal:subscription_count').length, 0);
  assert.equal(chA.subscriptionCount, undefined, 'pusher-js never got a count');
});
