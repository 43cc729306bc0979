// Authorized connections (PROTOCOL.md §7.6) with pusher-js 8: an app with
// `authorized_connections_timeout_seconds = 1` closes a connection that neither signs in nor
// subscribes to a private/presence channel in time with 4009 — pusher-js treats 4009 as
// "refused" and stays disconnected — while one that signs in (Node SDK `authenticateUser`) or
// authorizes a private channel stays connected and keeps receiving events.
//
// No sleeps: the clients connect together; the unauthorized one being closed is the moment
// at which the others have also been connected for longer than the timeout, and they are then
// shown to be alive by an event reaching them.

import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultApp, startHerald } from './herald.mjs';
import { cleanup, connectPusher, nextEvent, sdkAuthorizer, serverSdk, subscribe, unique, withTimeout } from './helpers.mjs';

let herald;
let sdk;

before(async () => {
  herald = await startHerald({ apps: [defaultApp({ authorized_connections_timeout_seconds: 1 })] });
  sdk = serverSdk(herald);
});
afterEach(cleanup);
after(() => herald?.stop());

/** Resolves with every pusher-js `error` seen once the client reaches `disconnected`. */
function closedByServer(pusher) {
  const errors = [];
  pusher.connection.bind('error', (e) => errors.push(e));
  return withTimeout(
    new Promise((resolve) => {
      pusher.connection.bind('state_change', ({ current }) => {
        if (current === 'disconnected') resolve(errors);
      });
    }),
    'the unauthorized connection to be closed',
  );
}

test('a client that never signs in is disconnected with 4009; a signed-in one stays', async () => {
  const id = `authorized-${process.pid}`;
  const [idle, member, privateOnly] = await Promise.all([
    connectPusher(herald),
    connectPusher(herald, {
      userAuthentication: { customHandler: ({ socketId }, cb) => cb(null, sdk.authenticateUser(socketId, { id })) },
    }),
    connectPusher(herald, { channelAuthorization: { customHandler: sdkAuthorizer(sdk) } }),
  ]);
  const idleClosed = closedByServer(idle);
  const states = [];
  for (const p of [member, privateOnly]) p.connection.bind('state_change', ({ current }) => states.push(current));

  member.signin();
  await member.rec.waitEvent('pusher:signin_success');
  const priv = unique('private-authorized-');
  const chPriv = await subscribe(privateOnly, priv);

  const errors = await idleClosed;
  const codes = errors.map((e) => e.data?.code ?? e.error?.data?.code).filter(Boolean);
  assert.ok(codes.includes(4009), `expected pusher:error 4009 before the close, got ${JSON.stringify(errors)}`);
  assert.equal(idle.connection.state, 'disconnected', '4009 is a refusal: pusher-js must not reconnect');

  // The authorized ones outlived the timeout and still work.
  assert.equal(member.connection.state, 'connected');
  assert.equal(privateOnly.connection.state, 'connected');
  const toUser = withTimeout(
    new Promise((resolve) => member.user.bind('still-here', resolve)),
    'sendToUser to the signed-in client',
  );
  await sdk.sendToUser(id, 'still-here', { ok: true });
  assert.deepEqual(await toUser, { ok: true });
  const onPriv = nextEvent(chPriv, 'still-here');
  await sdk.trigger(priv, 'still-here', { ok: 2 });
  assert.deepEqual((await onPriv).data, { ok: 2 });
  assert.deepEqual(states, [], 'an authorized client changed connection state');
});

test('a public subscription alone does not authorize the connection', async () => {
  const pusher = await connectPusher(herald);
  const closed = closedByServer(pusher);
  await subscribe(pusher, unique('public-only-'));
  const errors = await closed;
  const codes = errors.map((e) => e.data?.code ?? e.error?.data?.code).filter(Boolean);
  assert.ok(codes.includes(4009), JSON.stringify(errors));
});
