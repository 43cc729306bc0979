// Laravel Echo 2 (broadcasters 'reverb' and 'pusher', both on pusher-js 8) against herald, with a
// Laravel-like /broadcasting/auth endpoint signing through the Node SDK and events published the
// way Laravel's PusherBroadcaster does (POST /apps/{id}/events).

import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald } from './herald.mjs';
import {
  cleanup,
  connectEcho,
  disconnectEcho,
  serverSdk,
  startAuthEndpoint,
  unique,
  withTimeout,
} from './helpers.mjs';

let herald;
let sdk;
let authEndpoint;

const USERS = {
  1: { id: 1, name: 'Taylor' },
  2: { id: 2, name: 'Abigail' },
};

before(async () => {
  herald = await startHerald();
  sdk = serverSdk(herald);
  authEndpoint = await startAuthEndpoint(sdk, {
    // Laravel sends user_id as a string (PusherBroadcaster casts it) and the user's info.
    user: (req) => {
      const id = (req.headers.authorization || '').replace(/^Bearer user-/, '');
      return { user_id: String(id), user_info: USERS[id] };
    },
    deny: (name) => name.includes('forbidden'),
  });
});
afterEach(cleanup);
after(async () => {
  await authEndpoint?.close();
  await herald?.stop();
});

/** A promise for the first call of a callback-style Echo API, with a deadline. */
function once(register, what) {
  return withTimeout(new Promise((resolve) => register(resolve)), what);
}

for (const broadcaster of ['reverb', 'pusher']) {
  describe(`Echo broadcaster '${broadcaster}'`, () => {
    // Echo's default options are static and shared (its bearerToken option writes into one shared
    // headers object), so every instance gets its own `auth` object here.
    const echoAs = (userId) =>
      connectEcho(herald, {
        broadcaster,
        authEndpoint: authEndpoint.url,
        auth: { headers: { Authorization: `Bearer user-${userId}` } },
      });

    test('listen() on a public channel receives a namespaced Laravel event', async () => {
      const echo = await echoAs(1);
      const name = unique('orders-');
      const subscribed = once((cb) => echo.channel(name).subscribed(cb), 'subscribed()');
      const got = once((cb) => echo.channel(name).listen('OrderShipped', cb), 'OrderShipped');
      await subscribed;
      await sdk.trigger(name, 'App\\Events\\OrderShipped', { order: { id: 5 } });
      assert.deepEqual(await got, { order: { id: 5 } });
    });

    test('private() through /broadcasting/auth receives events; listen with a leading dot', async () => {
      const echo = await echoAs(1);
      const subscribed = once((cb) => echo.private('chat.1').subscribed(cb), 'subscribed()');
      const got = once((cb) => echo.private('chat.1').listen('.message.sent', cb), '.message.sent');
      await subscribed;
      await sdk.trigger('private-chat.1', 'message.sent', { text: 'hi' });
      assert.deepEqual(await got, { text: 'hi' });
    });

    test('private() denied by the auth endpoint → error() callback', async () => {
      const echo = await echoAs(1);
      const err = await once((cb) => echo.private(unique('forbidden-')).error(cb), 'error()');
      assert.equal(err.type, 'AuthError');
      assert.equal(err.status, 403);
    });

    test('join(): here, joining, leaving', async () => {
      const room = unique('room-');
      const taylor = await echoAs(1);
      const here1 = await once((cb) => taylor.join(room).here(cb), 'here() for the first user');
      assert.deepEqual(here1, [USERS[1]]);
      const joining = once((cb) => taylor.join(room).joining(cb), 'joining()');

      const abigail = await echoAs(2);
      const here2 = await once((cb) => abigail.join(room).here(cb), 'here() for the second user');
      assert.deepEqual(
        here2.sort((a, b) => a.id - b.id),
        [USERS[1], USERS[2]],
      );
      assert.deepEqual(await joining, USERS[2]);

      const leaving = once((cb) => taylor.join(room).leaving(cb), 'leaving()');
      await disconnectEcho(abigail);
      assert.deepEqual(await leaving, USERS[2]);
    });

    test('leave() unsubscribes: the others see leaving(), the leaver stops receiving', async () => {
      const room = unique('leave-');
      const taylor = await echoAs(1);
      const abigail = await echoAs(2);
      await once((cb) => taylor.join(room).here(cb), 'taylor here');
      await once((cb) => abigail.join(room).here(cb), 'abigail here');
      const leaving = once((cb) => taylor.join(room).leaving(cb), 'leaving()');
      abigail.leave(room);
      assert.deepEqual(await leaving, USERS[2]);
      // Abigail's connection is still up and no longer gets the room's events.
      const fence = unique('fence-');
      await once((cb) => abigail.channel(fence).subscribed(cb), 'fence subscribed');
      const got = once((cb) => taylor.join(room).listen('.after', cb), '.after at taylor');
      await sdk.trigger(`presence-${room}`, 'after', {});
      await got;
      const sentinel = once((cb) => abigail.channel(fence).listen('.sentinel', cb), 'sentinel at abigail');
      await sdk.trigger(fence, 'sentinel', {});
      await sentinel;
      assert.equal(abigail.connector.pusher.rec.events('after').length, 0);
    });

    test('whisper() reaches listenForWhisper() on the other client only', async () => {
      const room = unique('whisper-');
      const a = await echoAs(1);
      const b = await echoAs(2);
      await once((cb) => a.private(room).subscribed(cb), 'a subscribed');
      await once((cb) => b.private(room).subscribed(cb), 'b subscribed');
      const heardByA = [];
      a.private(room).listenForWhisper('typing', (e) => heardByA.push(e));
      const heardByB = once((cb) => b.private(room).listenForWhisper('typing', cb), 'whisper at b');
      a.private(room).whisper('typing', { name: 'Taylor' });
      assert.deepEqual(await heardByB, { name: 'Taylor' });
      // Sentinel whisper the other way: when it arrives, a's own whisper would have too.
      const sentinel = once((cb) => a.private(room).listenForWhisper('sentinel', cb), 'sentinel whisper at a');
      b.private(room).whisper('sentinel', {});
      await sentinel;
      assert.deepEqual(heardByA, [], 'whisper echoed to its sender');
    });

    test('whisper() on a presence channel carries the sender id', async () => {
      const room = unique('presence-whisper-');
      const a = await echoAs(1);
      const b = await echoAs(2);
      await once((cb) => a.join(room).here(cb), 'a here');
      await once((cb) => b.join(room).here(cb), 'b here');
      const heard = withTimeout(
        new Promise((resolve) =>
          b.connector.pusher.channel(`presence-${room}`).bind('client-typing', (data, meta) => resolve({ data, meta })),
        ),
        'presence whisper at b',
      );
      a.join(room).whisper('typing', { typing: true });
      const { data, meta } = await heard;
      assert.deepEqual(data, { typing: true });
      assert.equal(meta.user_id, '1');
    });

    test('toOthers(): the socket_id Echo reports is excluded by the HTTP API', async () => {
      const name = unique('others-');
      const me = await echoAs(1);
      const other = await echoAs(2);
      await once((cb) => me.channel(name).subscribed(cb), 'me subscribed');
      await once((cb) => other.channel(name).subscribed(cb), 'other subscribed');
      const mine = [];
      me.channel(name).listen('.updated', (e) => mine.push(e));
      const theirs = once((cb) => other.channel(name).listen('.updated', cb), 'other gets .updated');
      assert.match(me.socketId(), /^\d+\.\d+$/);
      await sdk.trigger(name, 'updated', { v: 1 }, { socket_id: me.socketId() });
      assert.deepEqual(await theirs, { v: 1 });
      const sentinel = once((cb) => me.channel(name).listen('.sentinel', cb), 'sentinel at me');
      await sdk.trigger(name, 'sentinel', {});
      await sentinel;
      assert.deepEqual(mine, []);
    });
  });
}
