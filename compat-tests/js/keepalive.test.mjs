// Keepalive with short timeouts (app activity_timeout_seconds = 1, server pong_timeout_seconds = 1):
// pusher-js's own pings are answered; herald's pings are answered by pusher-js; a silent raw
// client is closed with 4201.

import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultApp, startHerald } from './herald.mjs';
import { cleanup, connectPusher, dataOf, rawClient } from './helpers.mjs';

let herald;

before(async () => {
  herald = await startHerald({
    apps: [defaultApp({ activity_timeout_seconds: 1 })],
    server: { pong_timeout_seconds: 1 },
  });
});
afterEach(cleanup);
after(() => herald?.stop());

test('handshake announces activity_timeout 1 and pusher-js adopts it', async () => {
  const pusher = await connectPusher(herald);
  assert.equal(pusher.connection.activityTimeout, 1000);
});

test('pusher-js pings when idle and herald answers pusher:pong; same socket throughout', async () => {
  // pusher-js pings after 300 ms of silence, before herald would ping it.
  const pusher = await connectPusher(herald, { activityTimeout: 300 });
  const socketId = pusher.connection.socket_id;
  await pusher.rec.waitFor((m) => m.event === 'pusher:pong', 'a first pusher:pong');
  await pusher.rec.waitFor((m) => m.event === 'pusher:pong' && pusher.rec.events('pusher:pong').length >= 3, 'three pongs');
  assert.equal(pusher.connection.state, 'connected');
  assert.equal(pusher.connection.socket_id, socketId, 'pusher-js had to reconnect');
});

test('herald pings a silent raw client with pusher:ping and keeps it when it answers', async () => {
  const c = await rawClient(herald);
  await c.waitEvent('pusher:connection_established');
  const ping = await c.waitEvent('pusher:ping', undefined, 5000);
  assert.deepEqual(dataOf(ping), {});
  c.send({ event: 'pusher:pong', data: {} });
  // Answered: the next round comes, rather than a close.
  await c.waitFor((f) => f.event === 'pusher:ping' && c.frames.filter((x) => x.event === 'pusher:ping').length >= 2, 'a second ping', 5000);
  c.send({ event: 'pusher:pong', data: {} });
  c.send({ event: 'pusher:ping', data: {} });
  await c.waitEvent('pusher:pong');
});

test('a client that never answers is closed with 4201', async () => {
  const c = await rawClient(herald);
  await c.waitEvent('pusher:connection_established');
  const { code } = await c.waitClose(6000);
  assert.equal(code, 4201);
});
