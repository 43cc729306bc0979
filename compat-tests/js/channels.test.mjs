// Channel flavours beyond plain public/private with pusher-js 8 and the Node SDK: end-to-end
// encrypted channels (herald relays ciphertext untouched), cache channels, payload limits.

import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald } from './herald.mjs';
import { cleanup, connectPusher, nextEvent, sdkAuthorizer, serverSdk, subscribe, unique } from './helpers.mjs';

// 32 bytes 0x00..0x1f (PROTOCOL.md §14 V9). Only the SDK and the client ever see it.
const MASTER_KEY = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';

let herald;
let sdk;

before(async () => {
  herald = await startHerald();
  sdk = serverSdk(herald, herald.app(), { encryptionMasterKeyBase64: MASTER_KEY });
});
afterEach(cleanup);
after(() => herald?.stop());

const withAuthorizer = () => ({ channelAuthorization: { customHandler: sdkAuthorizer(sdk) } });

test('private-encrypted: the SDK encrypts, herald relays, pusher-js decrypts', async () => {
  const pusher = await connectPusher(herald, withAuthorizer());
  const name = unique('private-encrypted-vault-');
  const channel = await subscribe(pusher, name);
  const got = nextEvent(channel, 'secret');
  await sdk.trigger(name, 'secret', { msg: 'only for you', n: 7 });
  assert.deepEqual((await got).data, { msg: 'only for you', n: 7 });
  // On the wire it was ciphertext: herald never saw the plaintext.
  const raw = pusher.rec.events('secret', name)[0];
  assert.ok(raw.data.nonce && raw.data.ciphertext, `expected {nonce, ciphertext}, got ${JSON.stringify(raw.data)}`);
});

test('private-encrypted: a wrong signature is refused like a private channel', async () => {
  const pusher = await connectPusher(herald, {
    channelAuthorization: {
      customHandler: sdkAuthorizer(sdk, { tamper: (a) => ({ ...a, auth: `${a.auth.split(':')[0]}:${'1'.repeat(64)}` }) }),
    },
  });
  await assert.rejects(subscribe(pusher, unique('private-encrypted-bad-')), (e) => e.detail?.code === 4009);
});

test('cache channel: a new subscriber first gets the last event', async () => {
  const name = unique('cache-ticker-');
  await sdk.trigger(name, 'price', { v: 1 });
  await sdk.trigger(name, 'price', { v: 2 });
  const pusher = await connectPusher(herald);
  const channel = pusher.subscribe(name);
  const got = nextEvent(channel, 'price');
  await nextEvent(channel, 'pusher:subscription_succeeded');
  assert.deepEqual((await got).data, { v: 2 });
});

test('cache channel: empty cache → pusher:cache_miss on the channel', async () => {
  const pusher = await connectPusher(herald);
  const name = unique('cache-empty-');
  const channel = pusher.subscribe(name);
  const miss = nextEvent(channel, 'pusher:cache_miss');
  await nextEvent(channel, 'pusher:subscription_succeeded');
  await miss;
});

test('presence-cache channel: members and the cached event', async () => {
  const name = unique('presence-cache-room-');
  await sdk.trigger(name, 'topic', { t: 'hello' });
  const pusher = await connectPusher(herald, {
    channelAuthorization: { customHandler: sdkAuthorizer(sdk, { presence: () => ({ user_id: 'c1' }) }) },
  });
  const channel = pusher.subscribe(name);
  const got = nextEvent(channel, 'topic');
  await nextEvent(channel, 'pusher:subscription_succeeded');
  assert.equal(channel.members.count, 1);
  assert.deepEqual((await got).data, { t: 'hello' });
});

test('an event of exactly max_event_payload_bytes (10240) is delivered intact', async () => {
  const pusher = await connectPusher(herald);
  const name = unique('big-');
  const channel = await subscribe(pusher, name);
  const data = 'é'.repeat(2000) + 'x'.repeat(10240 - 4000); // 10240 bytes of UTF-8
  assert.equal(Buffer.byteLength(data), 10240);
  const got = nextEvent(channel, 'big');
  await sdk.trigger(name, 'big', data);
  assert.equal((await got).data, data);
});

test('channel names with every allowed punctuation character work end to end', async () => {
  const pusher = await connectPusher(herald);
  const name = unique('a-b_c=d@e,f.g;h-');
  const channel = await subscribe(pusher, name);
  const got = nextEvent(channel, 'ok');
  await sdk.trigger(name, 'ok', {});
  await got;
  const res = await sdk.get({ path: `/channels/${name}`, params: { info: 'subscription_count' } });
  assert.deepEqual(await res.json(), { occupied: true, subscription_count: 1 });
});
