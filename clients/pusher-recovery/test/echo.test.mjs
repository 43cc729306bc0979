// withRecovery on laravel-echo's pusher-js client (`echo.connector.pusher`): Echo's `listen`
// callbacks get every event exactly once and in order across a cut connection.

import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { withRecovery } from '../index.js';
import {
  Calls,
  EVENT,
  Inbox,
  cleanup,
  connectEcho,
  cutAway,
  publish,
  range,
  startAuthEndpoint,
  serverSdk,
  startHistoryHerald,
  startRelay,
  unique,
  withTimeout,
} from './support/harness.mjs';

let herald;
let sdk;
let relay;
let auth;

before(async () => {
  herald = await startHistoryHerald();
  sdk = serverSdk(herald);
  relay = await startRelay(herald.port);
  auth = await startAuthEndpoint(sdk);
});
afterEach(() => cleanup());
after(async () => {
  await relay?.close();
  await auth?.close();
  herald?.stop();
});

for (const kind of ['public', 'private']) {
  test(`laravel-echo (${kind} channel) recovers the events missed during a cut`, async () => {
    const name = unique('orders-echo-');
    const echo = await connectEcho(herald, {
      broadcaster: 'pusher',
      wsPort: relay.port,
      authEndpoint: auth.url, // Laravel's /broadcasting/auth, signing with the Node SDK
    });
    const pusher = echo.connector.pusher;
    const recovered = new Calls();
    withRecovery(pusher, { channels: ['orders-*', 'private-orders-*'], onRecovered: recovered.fn });

    const inbox = new Inbox();
    const channel = kind === 'public' ? echo.channel(name) : echo.private(name);
    const channelName = kind === 'public' ? name : `private-${name}`;
    const subscribed = new Promise((resolve) => channel.subscribed(resolve));
    channel.listen(`.${EVENT}`, inbox.take);
    await withTimeout(subscribed, 'Echo subscribed');
    const [anchored] = await recovered.next('the anchor');
    assert.equal(anchored, channelName);

    await publish(sdk, channelName, 1, 3);
    await inbox.until(3);
    await cutAway(relay, pusher);
    await publish(sdk, channelName, 4, 9);
    relay.release();
    const [, info] = await recovered.next('herald:recovered');
    assert.equal(info.replayed, 6);
    await publish(sdk, channelName, 10, 10);
    await inbox.until(10);
    assert.deepEqual(inbox.ns, range(1, 10));
  });
}
