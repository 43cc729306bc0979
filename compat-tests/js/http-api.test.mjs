// The HTTP API as the Node server SDK 5 uses it: GET /channels, /channels/NAME, /users,
// /connections, and the errors the SDK surfaces.

import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultApp, startHerald } from './herald.mjs';
import { cleanup, connectPusher, sdkAuthorizer, serverSdk, subscribe, unique } from './helpers.mjs';

let herald;
let sdk;

before(async () => {
  herald = await startHerald({
    apps: [defaultApp(), defaultApp({ id: '999', key: 'off-key', secret: 'off-secret', enabled: false })],
  });
  sdk = serverSdk(herald);
});
afterEach(cleanup);
after(() => herald?.stop());

async function getJson(path, params, client = sdk) {
  const res = await client.get({ path, params });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') || '', /json/);
  return res.json();
}

/** The status of a request the SDK rejected. */
async function failedStatus(promise) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e.status, `expected an HTTP error status, got ${e}`);
    return e.status;
  }
  assert.fail('the request should have failed');
}

test('GET /channels lists occupied channels only', async () => {
  const pusher = await connectPusher(herald);
  const a = unique('list-a-');
  const b = unique('list-b-');
  await subscribe(pusher, a);
  await subscribe(pusher, b);
  const { channels } = await getJson('/channels');
  assert.deepEqual(channels[a], {});
  assert.deepEqual(channels[b], {});
  pusher.unsubscribe(b);
  await subscribe(pusher, unique('fence-'));
  const after = await getJson('/channels');
  assert.ok(after.channels[a]);
  assert.equal(after.channels[b], undefined, 'vacated channel still listed');
});

test('GET /channels?filter_by_prefix narrows the list', async () => {
  const pusher = await connectPusher(herald);
  const prefix = unique('pfx');
  const inside = `${prefix}-in`;
  const outside = unique('other-');
  await subscribe(pusher, inside);
  await subscribe(pusher, outside);
  const { channels } = await getJson('/channels', { filter_by_prefix: prefix });
  assert.deepEqual(Object.keys(channels), [inside]);
});

test('GET /channels?info=user_count without a presence- prefix is a 400', async () => {
  assert.equal(await failedStatus(sdk.get({ path: '/channels', params: { info: 'user_count' } })), 400);
});

test('GET /channels/NAME with info=subscription_count', async () => {
  const [p1, p2] = await Promise.all([connectPusher(herald), connectPusher(herald)]);
  const name = unique('counted-');
  await subscribe(p1, name);
  await subscribe(p2, name);
  const info = await getJson(`/channels/${name}`, { info: 'subscription_count' });
  assert.deepEqual(info, { occupied: true, subscription_count: 2 });
  const plain = await getJson(`/channels/${name}`);
  assert.equal(plain.occupied, true);
});

test('GET /channels/NAME for an empty channel says occupied: false', async () => {
  const info = await getJson(`/channels/${unique('empty-')}`);
  assert.equal(info.occupied, false);
});

test('GET /channels/NAME?info=user_count on a non-presence channel is a 400', async () => {
  assert.equal(await failedStatus(sdk.get({ path: `/channels/${unique('pub-')}`, params: { info: 'user_count' } })), 400);
});

test('GET /channels/presence-x/users and info=user_count,subscription_count', async () => {
  const presence = (user_id) => () => ({ user_id, user_info: { n: user_id } });
  const a = await connectPusher(herald, { channelAuthorization: { customHandler: sdkAuthorizer(sdk, { presence: presence('a') }) } });
  const b = await connectPusher(herald, { channelAuthorization: { customHandler: sdkAuthorizer(sdk, { presence: presence('b') }) } });
  const name = unique('presence-http-');
  await subscribe(a, name);
  await subscribe(b, name);
  const { users } = await getJson(`/channels/${name}/users`);
  assert.deepEqual(users.map((u) => u.id).sort(), ['a', 'b']);
  const info = await getJson(`/channels/${name}`, { info: 'user_count' });
  assert.deepEqual(info, { occupied: true, user_count: 2 });
});

test('GET /channels/NAME/users on a public channel is a 400', async () => {
  assert.equal(await failedStatus(sdk.get({ path: `/channels/${unique('pub-')}/users` })), 400);
});

test('GET /channels/presence-empty/users → empty list', async () => {
  assert.deepEqual(await getJson(`/channels/${unique('presence-empty-')}/users`), { users: [] });
});

test('GET /connections counts open connections', async () => {
  await connectPusher(herald);
  await connectPusher(herald);
  const { connections } = await getJson('/connections');
  assert.equal(typeof connections, 'number');
  // Sockets closed by earlier tests may not be gone yet, so only a lower bound is certain.
  assert.ok(connections >= 2, `connections = ${connections}`);
});

test('wrong secret → 401', async () => {
  const bad = serverSdk(herald, { ...herald.app(), secret: 'not-the-secret' });
  assert.equal(await failedStatus(bad.get({ path: '/channels' })), 401);
  assert.equal(await failedStatus(bad.trigger('x', 'y', {})), 401);
});

test('wrong key for the app id → 401', async () => {
  const bad = serverSdk(herald, { ...herald.app(), key: 'other-key' });
  assert.equal(await failedStatus(bad.get({ path: '/channels' })), 401);
});

test('unknown app id → 404', async () => {
  const bad = serverSdk(herald, { ...herald.app(), id: '424242' });
  assert.equal(await failedStatus(bad.trigger('x', 'y', {})), 404);
});

test('disabled app → 403', async () => {
  const off = serverSdk(herald, herald.app('999'));
  assert.equal(await failedStatus(off.trigger('x', 'y', {})), 403);
});

test('payload over max_event_payload_bytes → 413', async () => {
  const big = 'x'.repeat(11 * 1024);
  assert.equal(await failedStatus(sdk.trigger('big', 'e', big)), 413);
});

test('triggerBatch with info returns index-aligned attributes', async () => {
  const pusher = await connectPusher(herald);
  const name = unique('batch-info-');
  await subscribe(pusher, name);
  const res = await sdk.triggerBatch([
    { channel: name, name: 'a', data: '{}', info: 'subscription_count' },
    { channel: unique('nobody-'), name: 'b', data: '{}' },
  ]);
  const body = await res.json();
  assert.equal(body.batch.length, 2);
  assert.deepEqual(body.batch[0], { subscription_count: 1 });
  assert.deepEqual(body.batch[1], {});
});

test('triggerBatch over max_batch_size (10) → 400', async () => {
  const batch = Array.from({ length: 11 }, (_, i) => ({ channel: 'c', name: `e${i}`, data: '{}' }));
  assert.equal(await failedStatus(sdk.triggerBatch(batch)), 400);
});
