// User authentication with pusher-js 8 (`pusher.signin()`, signed by the Node SDK's
// `authenticateUser`), server-to-user events (`sendToUser`) and `terminateUserConnections`.

import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald } from './herald.mjs';
import { cleanup, connectPusher, serverSdk, withTimeout } from './helpers.mjs';

let herald;
let sdk;

before(async () => {
  herald = await startHerald();
  sdk = serverSdk(herald);
});
afterEach(cleanup);
after(() => herald?.stop());

let userSeq = 0;
const newUserId = () => `user-${process.pid}-${++userSeq}`;

/** A connected pusher-js client that signs in as `id` (optionally tampering with the auth). */
async function signedIn(id, { tamper } = {}) {
  const pusher = await connectPusher(herald, {
    userAuthentication: {
      customHandler: ({ socketId }, cb) => {
        let auth = sdk.authenticateUser(socketId, { id, user_info: { name: id } });
        if (tamper) auth = tamper(auth);
        cb(null, auth);
      },
    },
  });
  pusher.signin();
  return pusher;
}

/** Wait until pusher-js has processed signin_success and subscribed #server-to-user-<id>. */
async function ready(pusher, id) {
  await pusher.rec.waitEvent('pusher:signin_success');
  await pusher.rec.waitEvent('pusher_internal:subscription_succeeded', `#server-to-user-${id}`);
}

function nextUserEvent(pusher, event) {
  return withTimeout(
    new Promise((resolve) => {
      const cb = (data) => {
        pusher.user.unbind(event, cb);
        resolve(data);
      };
      pusher.user.bind(event, cb);
    }),
    `user event ${event}`,
  );
}

test('signin succeeds and sendToUser reaches pusher.user', async () => {
  const id = newUserId();
  const pusher = await signedIn(id);
  await ready(pusher, id);
  assert.equal(pusher.user.user_data.id, id);
  const got = nextUserEvent(pusher, 'notification');
  const res = await sdk.sendToUser(id, 'notification', { text: 'for you' });
  assert.equal(res.status, 200);
  assert.deepEqual(await got, { text: 'for you' });
});

test('sendToUser reaches every socket of the user and nobody else', async () => {
  const id = newUserId();
  const other = newUserId();
  const [tab1, tab2, stranger] = await Promise.all([signedIn(id), signedIn(id), signedIn(other)]);
  await Promise.all([ready(tab1, id), ready(tab2, id), ready(stranger, other)]);
  const got1 = nextUserEvent(tab1, 'hello');
  const got2 = nextUserEvent(tab2, 'hello');
  await sdk.sendToUser(id, 'hello', { n: 1 });
  assert.deepEqual(await got1, { n: 1 });
  assert.deepEqual(await got2, { n: 1 });
  const sentinel = nextUserEvent(stranger, 'sentinel');
  await sdk.sendToUser(other, 'sentinel', {});
  await sentinel;
  assert.equal(stranger.rec.events('hello').length, 0);
  assert.equal(tab1.rec.events('hello').length, 1, 'exactly once per socket');
});

test('signin with a bad signature → pusher:error 4009, connection kept', async () => {
  const id = newUserId();
  const pusher = await signedIn(id, { tamper: (a) => ({ ...a, auth: `${a.auth.split(':')[0]}:${'0'.repeat(64)}` }) });
  const err = await pusher.rec.waitEvent('pusher:error');
  assert.equal(err.data.code, 4009);
  assert.equal(pusher.rec.events('pusher:signin_success').length, 0);
  assert.equal(pusher.connection.state, 'connected');
});

test('terminateUserConnections closes the user sockets with 4009; others stay', async () => {
  const id = newUserId();
  const other = newUserId();
  const [a, b, bystander] = await Promise.all([signedIn(id), signedIn(id), signedIn(other)]);
  await Promise.all([ready(a, id), ready(b, id), ready(bystander, other)]);
  const closed = (p) =>
    withTimeout(
      new Promise((resolve) => {
        p.connection.bind('state_change', ({ current }) => {
          if (current === 'disconnected') resolve();
        });
      }),
      'the terminated socket to disconnect',
    );
  const errors = [];
  a.connection.bind('error', (e) => errors.push(e));
  const [ca, cb] = [closed(a), closed(b)];
  const res = await sdk.terminateUserConnections(id);
  assert.equal(res.status, 200);
  await ca;
  await cb;
  // 4009 is a "refused" close for pusher-js: it stays disconnected instead of reconnecting.
  const codes = errors.map((e) => e.data?.code ?? e.error?.data?.code).filter(Boolean);
  assert.ok(codes.includes(4009), `expected a 4009 error, got ${JSON.stringify(errors)}`);
  assert.equal(bystander.connection.state, 'connected');
  const got = nextUserEvent(bystander, 'still-here');
  await sdk.sendToUser(other, 'still-here', {});
  await got;
});
