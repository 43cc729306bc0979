// Presence channels with pusher-js 8 and the Node SDK: members, member_added/member_removed,
// one user on two sockets, client events with user_id, HTTP reads of presence state.

import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald } from './herald.mjs';
import {
  cleanup,
  connectPusher,
  disconnect,
  nextEvent,
  sdkAuthorizer,
  serverSdk,
  subscribe,
  unique,
} from './helpers.mjs';

let herald;
let sdk;

before(async () => {
  herald = await startHerald();
  sdk = serverSdk(herald);
});
afterEach(cleanup);
after(() => herald?.stop());

/** A pusher-js client that joins presence channels as `user_id` with `user_info`. */
function asUser(user_id, user_info) {
  return connectPusher(herald, {
    channelAuthorization: {
      customHandler: sdkAuthorizer(sdk, { presence: () => (user_info === undefined ? { user_id } : { user_id, user_info }) }),
    },
  });
}

function membersOf(channel) {
  const out = {};
  channel.members.each((m) => (out[m.id] = m.info));
  return out;
}

async function getJson(path, params) {
  const res = await sdk.get({ path, params });
  assert.equal(res.status, 200);
  return res.json();
}

test('presence: first member sees only itself', async () => {
  const alice = await asUser('1', { name: 'Alice' });
  const name = unique('presence-room-');
  const channel = await subscribe(alice, name);
  assert.equal(channel.members.count, 1);
  assert.equal(channel.members.me.id, '1');
  assert.deepEqual(channel.members.me.info, { name: 'Alice' });
  assert.deepEqual(membersOf(channel), { 1: { name: 'Alice' } });
});

test('presence: two users see each other, member_added and member_removed', async () => {
  const name = unique('presence-duo-');
  const alice = await asUser('1', { name: 'Alice' });
  const chA = await subscribe(alice, name);
  const added = nextEvent(chA, 'pusher:member_added');

  const bob = await asUser('2', { name: 'Bob' });
  const chB = await subscribe(bob, name);
  assert.equal(chB.members.count, 2);
  assert.deepEqual(membersOf(chB), { 1: { name: 'Alice' }, 2: { name: 'Bob' } });
  assert.equal(chB.members.me.id, '2');

  const { data: member } = await added;
  assert.deepEqual(member, { id: '2', info: { name: 'Bob' } });
  assert.equal(chA.members.count, 2);
  // Bob never hears about his own arrival.
  assert.equal(bob.rec.events('pusher_internal:member_added', name).length, 0);

  const removed = nextEvent(chA, 'pusher:member_removed');
  await disconnect(bob);
  const { data: gone } = await removed;
  assert.equal(gone.id, '2');
  assert.deepEqual(gone.info, { name: 'Bob' });
  assert.equal(chA.members.count, 1);
});

test('presence: numeric user_id from the SDK is emitted as a string', async () => {
  const name = unique('presence-numeric-');
  const alice = await asUser(10, { name: 'Ten' });
  const chA = await subscribe(alice, name);
  const added = alice.rec.waitEvent('pusher_internal:member_added', name);
  const bob = await asUser(20);
  const chB = await subscribe(bob, name);
  assert.deepEqual(Object.keys(membersOf(chB)).sort(), ['10', '20']);
  const frame = await added;
  assert.equal(frame.data.user_id, '20');
  assert.equal(typeof frame.data.user_id, 'string');
  assert.equal(chA.members.count, 2);
  // A member without user_info: null in the subscription hash (member_added may omit it).
  assert.equal(membersOf(chB)['20'], null);
  assert.equal(frame.data.user_info ?? null, null);
});

test('presence: unsubscribe sends member_removed to the others', async () => {
  const name = unique('presence-unsub-');
  const alice = await asUser('1', { name: 'Alice' });
  const bob = await asUser('2', { name: 'Bob' });
  const chA = await subscribe(alice, name);
  await subscribe(bob, name);
  const removed = nextEvent(chA, 'pusher:member_removed');
  bob.unsubscribe(name);
  assert.equal((await removed).data.id, '2');
});

test('presence: one user on two sockets → one member_added, member_removed only after both leave', async () => {
  const name = unique('presence-tabs-');
  const observer = await asUser('obs', { name: 'Observer' });
  const chObs = await subscribe(observer, name);

  const tab1 = await asUser('u7', { name: 'Seven' });
  await subscribe(tab1, name);
  await observer.rec.waitEvent('pusher_internal:member_added', name);

  const tab2 = await asUser('u7', { name: 'Seven' });
  const ch2 = await subscribe(tab2, name);
  assert.equal(ch2.members.count, 2, 'the second socket sees two distinct users');
  assert.deepEqual(Object.keys(membersOf(ch2)).sort(), ['obs', 'u7']);

  // member_added is sent before the joiner's subscription_succeeded, so a sentinel now proves
  // there was no second one.
  await sdk.trigger(name, 'sentinel-1', {});
  await observer.rec.waitEvent('sentinel-1', name);
  assert.equal(observer.rec.events('pusher_internal:member_added', name).length, 1, 'duplicate member_added');
  assert.equal(chObs.members.count, 2);

  // First socket leaves (unsubscribe, fenced by a later subscribe on the same socket).
  tab1.unsubscribe(name);
  await subscribe(tab1, unique('fence-'));
  await sdk.trigger(name, 'sentinel-2', {});
  await observer.rec.waitEvent('sentinel-2', name);
  assert.equal(observer.rec.events('pusher_internal:member_removed', name).length, 0, 'member_removed while a socket remains');
  assert.equal(chObs.members.count, 2);
  const users = await getJson(`/channels/${name}/users`);
  assert.deepEqual(users.users.map((u) => u.id).sort(), ['obs', 'u7']);

  // Last socket leaves (disconnect) → member_removed.
  const removed = nextEvent(chObs, 'pusher:member_removed');
  await disconnect(tab2);
  assert.equal((await removed).data.id, 'u7');
  assert.equal(chObs.members.count, 1);
});

test('presence: client events carry the sender user_id and skip the sender', async () => {
  const name = unique('presence-chat-');
  const alice = await asUser('1', { name: 'Alice' });
  const bob = await asUser('2', { name: 'Bob' });
  const [chA, chB] = [await subscribe(alice, name), await subscribe(bob, name)];
  const got = nextEvent(chB, 'client-typing');
  chA.trigger('client-typing', { typing: true });
  const { data, metadata } = await got;
  assert.deepEqual(data, { typing: true });
  assert.equal(metadata.user_id, '1');
  chB.trigger('client-sentinel', {});
  const back = await alice.rec.waitEvent('client-sentinel', name);
  assert.equal(back.user_id, '2');
  assert.equal(alice.rec.events('client-typing').length, 0);
});

test('presence over HTTP: users, channel info user_count, channels filtered by prefix', async () => {
  const name = unique('presence-http-');
  const alice = await asUser('1', { name: 'Alice' });
  const bob = await asUser('2', { name: 'Bob' });
  const bob2 = await asUser('2', { name: 'Bob' });
  await subscribe(alice, name);
  await subscribe(bob, name);
  await subscribe(bob2, name);

  const users = await getJson(`/channels/${name}/users`);
  assert.deepEqual(users.users.map((u) => u.id).sort(), ['1', '2']);

  const info = await getJson(`/channels/${name}`, { info: 'user_count' });
  assert.equal(info.occupied, true);
  assert.equal(info.user_count, 2);

  const list = await getJson('/channels', { filter_by_prefix: 'presence-', info: 'user_count' });
  assert.deepEqual(list.channels[name], { user_count: 2 });

  const trig = await sdk.trigger(name, 'x', {}, { info: 'user_count' });
  assert.deepEqual(await trig.json(), { channels: { [name]: { user_count: 2 } } });
});
