// Watchlist events with pusher-js 8 (PROTOCOL.md §7.4): user A signs in with `watchlist: [B]`
// through a `userAuthentication.customHandler` built on the Node SDK's `authenticateUser`, and
// `pusher.user.watchlist.bind('online' / 'offline', …)` sees B come and go as B signs in on
// another pusher-js client and disconnects.

import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald } from './herald.mjs';
import { cleanup, connectPusher, disconnect, serverSdk, withTimeout } from './helpers.mjs';

let herald;
let sdk;

before(async () => {
  herald = await startHerald();
  sdk = serverSdk(herald);
});
afterEach(cleanup);
after(() => herald?.stop());

let seq = 0;
const newUserId = (who) => `${who}-${process.pid}-${++seq}`;

/** A pusher-js client whose `signin()` is signed by the Node SDK's authenticateUser. */
async function client(userData) {
  return connectPusher(herald, {
    userAuthentication: {
      customHandler: ({ socketId }, cb) => {
        try {
          cb(null, sdk.authenticateUser(socketId, userData));
        } catch (e) {
          cb(e, null);
        }
      },
    },
  });
}

/** Records every watchlist event pusher-js emits (`{name, user_ids}`), with deadline-bound waits. */
function watch(pusher) {
  const seen = [];
  let waiters = [];
  for (const name of ['online', 'offline']) {
    pusher.user.watchlist.bind(name, (event) => {
      seen.push(event);
      waiters = waiters.filter((w) => {
        const hit = w.pred(event);
        if (hit) w.resolve(event);
        return !hit;
      });
    });
  }
  return {
    seen,
    waitFor(name, userId, after = 0) {
      const pred = (e) => e.name === name && e.user_ids.includes(userId);
      const old = seen.slice(after).find(pred);
      if (old) return Promise.resolve(old);
      return withTimeout(new Promise((resolve) => waiters.push({ pred, resolve })), `watchlist ${name} for ${userId}`);
    },
  };
}

test('watchlist: online when the watched user signs in, offline when they disconnect', async () => {
  const a = newUserId('watcher');
  const b = newUserId('watched');
  const alice = await client({ id: a, watchlist: [b] });
  const events = watch(alice);
  alice.signin();
  await alice.rec.waitEvent('pusher:signin_success');
  // The status right after signin: B is not signed in anywhere.
  const initial = await events.waitFor('offline', b);
  assert.deepEqual(initial, { name: 'offline', user_ids: [b] });
  assert.equal(events.seen.filter((e) => e.name === 'online').length, 0);

  const bob = await client({ id: b });
  bob.signin();
  await bob.rec.waitEvent('pusher:signin_success');
  const online = await events.waitFor('online', b, 1);
  assert.deepEqual(online, { name: 'online', user_ids: [b] });

  // A second socket of B is not a new "online"; B goes offline only when the last one closes.
  const bob2 = await client({ id: b });
  bob2.signin();
  await bob2.rec.waitEvent('pusher:signin_success');
  await disconnect(bob);
  const mark = events.seen.length;
  await disconnect(bob2);
  const offline = await events.waitFor('offline', b, mark);
  assert.deepEqual(offline, { name: 'offline', user_ids: [b] });
  assert.deepEqual(
    events.seen.map((e) => e.name),
    ['offline', 'online', 'offline'],
    'one event per transition of B',
  );
  // The frames came as pusher_internal:watchlist_events without a channel (PROTOCOL.md §7.4).
  const frames = alice.rec.events('pusher_internal:watchlist_events');
  assert.equal(frames.length, 3);
  assert.ok(frames.every((f) => f.channel === undefined));
});

test('watchlist: a user already online when the watcher signs in is reported online', async () => {
  const a = newUserId('watcher');
  const b = newUserId('early');
  const c = newUserId('absent');
  const bob = await client({ id: b });
  bob.signin();
  await bob.rec.waitEvent('pusher:signin_success');
  const alice = await client({ id: a, watchlist: [b, c] });
  const events = watch(alice);
  alice.signin();
  assert.deepEqual(await events.waitFor('online', b), { name: 'online', user_ids: [b] });
  assert.deepEqual(await events.waitFor('offline', c), { name: 'offline', user_ids: [c] });
  await disconnect(bob);
  await events.waitFor('offline', b);
});
