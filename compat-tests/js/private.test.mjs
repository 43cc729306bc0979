// Private channels with pusher-js 8 and authorization from the Node SDK's `authorizeChannel`,
// both as a custom handler and through a real HTTP auth endpoint; client events.

import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultApp, startHerald } from './herald.mjs';
import {
  cleanup,
  connectPusher,
  nextEvent,
  sdkAuthorizer,
  serverSdk,
  startAuthEndpoint,
  subscribe,
  unique,
  withTimeout,
} from './helpers.mjs';

let herald;
let sdk;
let authEndpoint;

before(async () => {
  herald = await startHerald({
    apps: [defaultApp(), defaultApp({ id: '555', key: 'quiet-key', secret: 'quiet-secret', client_events: false })],
  });
  sdk = serverSdk(herald);
  authEndpoint = await startAuthEndpoint(sdk, { deny: (name) => name.includes('forbidden') });
});
afterEach(cleanup);
after(async () => {
  await authEndpoint?.close();
  await herald?.stop();
});

const withAuthorizer = (opts = {}) => ({ channelAuthorization: { customHandler: sdkAuthorizer(sdk, opts) } });

/** Resolve with the data of the next connection-level pusher:error. */
function nextPusherError(pusher) {
  return withTimeout(
    new Promise((resolve) => {
      const cb = (data) => {
        pusher.unbind('pusher:error', cb);
        resolve(data);
      };
      pusher.bind('pusher:error', cb);
    }),
    'pusher:error',
  );
}

test('private channel: good auth from authorizeChannel subscribes and receives events', async () => {
  const pusher = await connectPusher(herald, withAuthorizer());
  const name = unique('private-orders-');
  const channel = await subscribe(pusher, name);
  assert.equal(channel.subscribed, true);
  const got = nextEvent(channel, 'shipped');
  await sdk.trigger(name, 'shipped', { id: 42 });
  assert.deepEqual((await got).data, { id: 42 });
});

test('private channel through a real HTTP auth endpoint (authEndpoint)', async () => {
  const pusher = await connectPusher(herald, { channelAuthorization: { endpoint: authEndpoint.url, transport: 'ajax' } });
  const name = unique('private-http-');
  const channel = await subscribe(pusher, name);
  const got = nextEvent(channel, 'ping');
  await sdk.trigger(name, 'ping', { ok: true });
  assert.deepEqual((await got).data, { ok: true });
});

test('auth endpoint answering 403: pusher-js reports AuthError and never subscribes', async () => {
  const pusher = await connectPusher(herald, { channelAuthorization: { endpoint: authEndpoint.url, transport: 'ajax' } });
  const name = unique('private-forbidden-');
  const err = await subscribe(pusher, name).then(
    () => assert.fail('subscription must not succeed'),
    (e) => e.detail,
  );
  assert.equal(err.type, 'AuthError');
  assert.equal(err.status, 403);
});

test('private channel: bad signature → pusher:error 4009, not subscribed, connection kept', async () => {
  const tamper = (auth) => ({ ...auth, auth: `${auth.auth.split(':')[0]}:${'0'.repeat(64)}` });
  const pusher = await connectPusher(herald, withAuthorizer({ tamper }));
  const name = unique('private-bad-');
  const err = nextPusherError(pusher);
  const channel = pusher.subscribe(name);
  const data = await err;
  assert.equal(data.code, 4009);
  assert.equal(typeof data.message, 'string');
  assert.equal(channel.subscribed, false);
  assert.equal(pusher.connection.state, 'connected');
  // The connection still works: a public channel subscribes afterwards.
  await subscribe(pusher, unique('after-bad-auth-'));
  assert.equal(pusher.connection.state, 'connected');
});

test('private channel: auth signed for another socket → pusher:error 4009', async () => {
  const tamper = (auth) => sdk.authorizeChannel('1.1', name);
  const pusher = await connectPusher(herald, withAuthorizer({ tamper }));
  const name = unique('private-other-socket-');
  const err = nextPusherError(pusher);
  pusher.subscribe(name);
  assert.equal((await err).code, 4009);
});

test('private channel: auth with the wrong app key → pusher:error 4009', async () => {
  const tamper = (auth) => ({ auth: auth.auth.replace(/^[^:]+:/, 'other-key:') });
  const pusher = await connectPusher(herald, withAuthorizer({ tamper }));
  const err = nextPusherError(pusher);
  pusher.subscribe(unique('private-wrong-key-'));
  assert.equal((await err).code, 4009);
});

test('private channel: auth signed over channel_data (Node SDK with data) is accepted', async () => {
  // PROTOCOL.md §5.2.3: authorizeChannel(socket, channel, data) signs socket:channel:channel_data
  // for any channel, and pusher-js then sends channel_data; herald accepts it.
  const pusher = await connectPusher(herald, {
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, cb) => cb(null, sdk.authorizeChannel(socketId, channelName, { user_id: 'u1' })),
    },
  });
  const channel = await subscribe(pusher, unique('private-with-data-'));
  assert.equal(channel.subscribed, true);
});

test('client events reach the other subscriber, not the sender', async () => {
  const [a, b] = await Promise.all([connectPusher(herald, withAuthorizer()), connectPusher(herald, withAuthorizer())]);
  const name = unique('private-chat-');
  const [chA, chB] = await Promise.all([subscribe(a, name), subscribe(b, name)]);
  const got = nextEvent(chB, 'client-typing');
  assert.equal(chA.trigger('client-typing', { typing: true, who: 'a' }), true);
  const { data, metadata } = await got;
  assert.deepEqual(data, { typing: true, who: 'a' });
  assert.equal(metadata.user_id, undefined, 'no user_id on private channels');
  // Sentinel from b to a: a receives it, and never received its own event.
  chB.trigger('client-sentinel', {});
  await a.rec.waitEvent('client-sentinel', name);
  assert.equal(a.rec.events('client-typing').length, 0, 'client event echoed to its sender');
  assert.equal(b.rec.events('client-sentinel').length, 0);
});

test('client event on a public channel → pusher:error 4009 and nothing is relayed', async () => {
  const [a, b] = await Promise.all([connectPusher(herald), connectPusher(herald)]);
  const name = unique('public-chat-');
  const [chA] = await Promise.all([subscribe(a, name), subscribe(b, name)]);
  const err = nextPusherError(a);
  chA.trigger('client-nope', { x: 1 });
  assert.equal((await err).code, 4009);
  await sdk.trigger(name, 'sentinel', {});
  await b.rec.waitEvent('sentinel', name);
  assert.equal(b.rec.events('client-nope').length, 0);
});

test('client events disabled for the app → pusher:error 4301', async () => {
  const quiet = herald.app('555');
  const quietSdk = serverSdk(herald, quiet);
  const opts = { app: quiet, channelAuthorization: { customHandler: sdkAuthorizer(quietSdk) } };
  const [a, b] = await Promise.all([connectPusher(herald, opts), connectPusher(herald, opts)]);
  const name = unique('private-quiet-');
  const [chA] = await Promise.all([subscribe(a, name), subscribe(b, name)]);
  const err = nextPusherError(a);
  chA.trigger('client-hello', {});
  assert.equal((await err).code, 4301);
  assert.equal(a.connection.state, 'connected');
  await quietSdk.trigger(name, 'sentinel', {});
  await b.rec.waitEvent('sentinel', name);
  assert.equal(b.rec.events('client-hello').length, 0);
});
