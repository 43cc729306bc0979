// Webhooks (PROTOCOL.md §12) received by a real HTTP server in the test, each request checked
// with the Node SDK's `pusher.webhook({headers, rawBody})` (`isValid()`, `getEvents()`), while
// real pusher-js clients make the transitions: channel_occupied / channel_vacated (after the
// configured leave delay), member_added / member_removed, client_event, cache_miss and
// subscription_count, each once per transition. Delivery: a target that answers 500 twice gets
// the event exactly once; a dead target (a closed port) stops neither channel events to
// pusher-js nor webhooks to a healthy second target.
//
// "Exactly once" is shown with a sentinel: a later transition's webhook is awaited, then the
// record is checked. herald sends up to 8 requests to one endpoint at once, so the sentinel is
// always a transition made after the checked one's webhook already arrived.

import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultApp, freePort, startHerald } from './herald.mjs';
import { cleanup, connectPusher, disconnect, nextEvent, sdkAuthorizer, serverSdk, subscribe, unique } from './helpers.mjs';
import { startReceiver, webhookEvent } from './webhook-receiver.mjs';

const LEAVE_DELAY_MS = 300;
const RETRY_WAIT_MS = 15_000; // two backoffs (≤ 1 s + ≤ 2 s) and the attempts, with room to spare

let herald;
let main; // receiver of the main app (every event kind)
let flaky; // answers 500 twice, then 200
let healthy; // second target of the app whose first target is dead
let sdk;
let flakySdk;
let deadSdk;
let deadUrl;

before(async () => {
  main = await startReceiver();
  flaky = await startReceiver({ respond: (n) => (n <= 2 ? 500 : 200) });
  healthy = await startReceiver();
  deadUrl = `http://127.0.0.1:${await freePort()}/hook`; // nothing listens there
  herald = await startHerald({
    webhooks: {
      leave_delay_ms: LEAVE_DELAY_MS,
      request_timeout_ms: 2000,
      retry_for_seconds: 60,
      breaker_failure_threshold: 3,
      breaker_cooldown_seconds: 60,
    },
    apps: [
      defaultApp({
        webhooks: [{ url: main.url, headers: { 'X-Compat-Test': 'main' } }], // event_types absent: all
      }),
      defaultApp({
        id: '222',
        key: 'flaky-key',
        secret: 'flaky-secret',
        subscription_count: false,
        webhooks: [{ url: flaky.url, event_types: ['channel_occupied'] }],
      }),
      defaultApp({
        id: '333',
        key: 'dead-key',
        secret: 'dead-secret',
        webhooks: [
          { url: deadUrl, event_types: ['channel_occupied', 'channel_vacated', 'subscription_count'] },
          { url: healthy.url, event_types: ['channel_occupied', 'channel_vacated', 'subscription_count'] },
        ],
      }),
    ],
  });
  sdk = serverSdk(herald);
  flakySdk = serverSdk(herald, herald.app('222'));
  deadSdk = serverSdk(herald, herald.app('333'));
});
afterEach(cleanup);
after(async () => {
  await herald?.stop();
  await Promise.all([main, flaky, healthy].map((r) => r?.close()));
});

/** Validate a received request with the Node SDK, as an app's webhook endpoint would. */
function verified(req, pusherSdk = sdk) {
  const hook = pusherSdk.webhook({ headers: req.headers, rawBody: req.rawBody });
  assert.equal(hook.isValid(), true, `webhook not valid for the Node SDK: ${JSON.stringify(req.headers)} ${req.rawBody}`);
  assert.equal(req.method, 'POST');
  assert.equal(req.headers['x-pusher-key'], pusherSdk.config.token.key);
  const events = hook.getEvents();
  assert.ok(Array.isArray(events) && events.length >= 1);
  assert.equal(typeof hook.getData().time_ms, 'number');
  assert.ok(Math.abs(hook.getTime().getTime() - Date.now()) < 60_000, 'time_ms is the creation time in Unix ms');
  return events;
}

/** Wait for the accepted webhook event matching `pred`, validate its request, return the event. */
async function hook(receiver, pred, what, pusherSdk = sdk, ms) {
  const { req, event } = await receiver.waitEvent(pred, what, ms);
  verified(req, pusherSdk);
  return { req, event };
}

/** A sentinel transition on the main app: a fresh channel occupied; resolves once its webhook arrived. */
async function mainSentinel() {
  const pusher = await connectPusher(herald);
  const name = unique('wh-sentinel-');
  await subscribe(pusher, name);
  await hook(main, webhookEvent('channel_occupied', name), `sentinel occupied ${name}`);
}

const count = (receiver, name, channel, fields) => receiver.events(webhookEvent(name, channel, fields)).length;

test('signature: the Node SDK accepts herald\'s request and rejects a tampered one; extra headers sent', async () => {
  const pusher = await connectPusher(herald);
  const name = unique('wh-sig-');
  await subscribe(pusher, name);
  const { req } = await hook(main, webhookEvent('channel_occupied', name), 'channel_occupied');
  assert.equal(req.headers['content-type'], 'application/json');
  assert.match(req.headers['x-pusher-signature'], /^[0-9a-f]{64}$/);
  assert.equal(req.headers['x-compat-test'], 'main', 'configured extra header');
  const tampered = sdk.webhook({ headers: req.headers, rawBody: req.rawBody.replace(name, `${name}x`) });
  assert.equal(tampered.isValid(), false);
  const otherSecret = serverSdk(herald, { ...herald.app(), secret: 'not-the-secret' });
  assert.equal(otherSecret.webhook({ headers: req.headers, rawBody: req.rawBody }).isValid(), false);
});

test('channel_occupied once per 0→1, channel_vacated once after the leave delay', async () => {
  const [a, b] = await Promise.all([connectPusher(herald), connectPusher(herald)]);
  const name = unique('wh-room-');
  await subscribe(a, name);
  const { event } = await hook(main, webhookEvent('channel_occupied', name), 'channel_occupied');
  assert.deepEqual(event, { name: 'channel_occupied', channel: name });

  // A second subscriber is not an occupation; its subscription_count webhook shows herald saw it.
  await subscribe(b, name);
  await hook(main, webhookEvent('subscription_count', name, { subscription_count: 2 }), 'subscription_count 2');
  a.unsubscribe(name);
  await hook(main, webhookEvent('subscription_count', name, { subscription_count: 1 }), 'subscription_count 1');
  assert.equal(count(main, 'channel_vacated', name), 0, 'vacated while b is still subscribed');

  const leftAt = Date.now();
  b.unsubscribe(name);
  const { req, event: vacated } = await hook(main, webhookEvent('channel_vacated', name), 'channel_vacated');
  assert.deepEqual(vacated, { name: 'channel_vacated', channel: name });
  const waited = req.at - leftAt;
  assert.ok(waited >= LEAVE_DELAY_MS - 10, `channel_vacated came ${waited} ms after the last unsubscribe`);

  await mainSentinel();
  assert.equal(count(main, 'channel_occupied', name), 1);
  assert.equal(count(main, 'channel_vacated', name), 1);
});

test('a rejoin within the leave delay sends neither channel_vacated nor a second channel_occupied', async () => {
  const pusher = await connectPusher(herald);
  const name = unique('wh-flap-');
  await subscribe(pusher, name);
  await hook(main, webhookEvent('channel_occupied', name), 'channel_occupied');
  pusher.unsubscribe(name);
  await subscribe(pusher, name); // back at once, well within the 300 ms delay
  // Leave for good: exactly one vacated, after the delay.
  pusher.unsubscribe(name);
  await hook(main, webhookEvent('channel_vacated', name), 'channel_vacated');
  await mainSentinel();
  assert.equal(count(main, 'channel_occupied', name), 1, 'the quick rejoin produced a second occupied');
  assert.equal(count(main, 'channel_vacated', name), 1, 'the quick leave produced its own vacated');
});

test('member_added on a user\'s first socket, member_removed after their last socket leaves', async () => {
  const as = (userId) =>
    connectPusher(herald, {
      channelAuthorization: {
        customHandler: sdkAuthorizer(sdk, { presence: () => ({ user_id: userId, user_info: { name: userId } }) }),
      },
    });
  const name = unique('presence-wh-');
  const [u1a, u1b, u2] = await Promise.all([as('u1'), as('u1'), as('u2')]);
  await subscribe(u1a, name);
  const { event: added1 } = await hook(main, webhookEvent('member_added', name, { user_id: 'u1' }), 'member_added u1');
  assert.deepEqual(added1, { name: 'member_added', channel: name, user_id: 'u1' });
  await subscribe(u1b, name); // same user, second socket: no event
  await subscribe(u2, name);
  await hook(main, webhookEvent('member_added', name, { user_id: 'u2' }), 'member_added u2');

  await disconnect(u1a); // u1 still has u1b
  const leftAt = Date.now();
  await disconnect(u2);
  const { req, event: removed2 } = await hook(
    main,
    webhookEvent('member_removed', name, { user_id: 'u2' }),
    'member_removed u2',
  );
  assert.deepEqual(removed2, { name: 'member_removed', channel: name, user_id: 'u2' });
  assert.ok(req.at - leftAt >= LEAVE_DELAY_MS - 10, `member_removed came ${req.at - leftAt} ms after the leave`);
  assert.equal(count(main, 'member_removed', name, { user_id: 'u1' }), 0, 'u1 still has a socket in the channel');

  await disconnect(u1b);
  await hook(main, webhookEvent('member_removed', name, { user_id: 'u1' }), 'member_removed u1');
  await hook(main, webhookEvent('channel_vacated', name), 'channel_vacated');
  await mainSentinel();
  assert.equal(count(main, 'member_added', name, { user_id: 'u1' }), 1);
  assert.equal(count(main, 'member_added', name, { user_id: 'u2' }), 1);
  assert.equal(count(main, 'member_removed', name, { user_id: 'u1' }), 1);
  assert.equal(count(main, 'member_removed', name, { user_id: 'u2' }), 1);
  assert.equal(count(main, 'subscription_count', name), 0, 'no subscription_count for presence channels');
});

test('client_event: one webhook per accepted client event, user_id on presence', async () => {
  const opts = (userId) => ({
    channelAuthorization: { customHandler: sdkAuthorizer(sdk, { presence: () => ({ user_id: userId }) }) },
  });
  const [a, b] = await Promise.all([connectPusher(herald, opts('alice')), connectPusher(herald, opts('bob'))]);

  const priv = unique('private-wh-chat-');
  const [chA] = await Promise.all([subscribe(a, priv), subscribe(b, priv)]);
  assert.equal(chA.trigger('client-typing', { typing: true }), true);
  const { event } = await hook(main, webhookEvent('client_event', priv), 'client_event (private)');
  assert.deepEqual(event, {
    name: 'client_event',
    channel: priv,
    event: 'client-typing',
    data: JSON.stringify({ typing: true }),
    socket_id: a.connection.socket_id,
  });

  const pres = unique('presence-wh-chat-');
  const [presA] = await Promise.all([subscribe(a, pres), subscribe(b, pres)]);
  presA.trigger('client-wave', { hi: 1 });
  const { event: onPresence } = await hook(main, webhookEvent('client_event', pres), 'client_event (presence)');
  assert.deepEqual(onPresence, {
    name: 'client_event',
    channel: pres,
    event: 'client-wave',
    data: JSON.stringify({ hi: 1 }),
    socket_id: a.connection.socket_id,
    user_id: 'alice',
  });

  // A refused client event (public channel → 4009) makes no webhook.
  const pub = unique('wh-public-');
  const chPub = await subscribe(a, pub);
  chPub.trigger('client-nope', {});
  await a.rec.waitFor((m) => m.event === 'pusher:error' && m.data?.code === 4009, 'pusher:error 4009');

  await mainSentinel();
  assert.equal(count(main, 'client_event', priv), 1);
  assert.equal(count(main, 'client_event', pres), 1);
  assert.equal(count(main, 'client_event', pub), 0);
});

test('cache_miss: one webhook when two clients hit the same empty cache channel; none once cached', async () => {
  const [a, b] = await Promise.all([connectPusher(herald), connectPusher(herald)]);
  const name = unique('cache-wh-');
  await subscribe(a, name);
  await a.rec.waitEvent('pusher:cache_miss', name);
  const { event } = await hook(main, webhookEvent('cache_miss', name), 'cache_miss');
  assert.deepEqual(event, { name: 'cache_miss', channel: name });
  await subscribe(b, name);
  await b.rec.waitEvent('pusher:cache_miss', name); // a miss for the client, deduplicated for the webhook

  const warm = unique('cache-wh-warm-');
  await sdk.trigger(warm, 'price', { v: 1 });
  const c = await connectPusher(herald);
  await subscribe(c, warm);
  await c.rec.waitEvent('price', warm);

  await mainSentinel();
  assert.equal(count(main, 'cache_miss', name), 1, 'cache_miss webhook not deduplicated');
  assert.equal(count(main, 'cache_miss', warm), 0);
});

test('subscription_count: one webhook per subscribe/unsubscribe with the new count', async () => {
  const [a, b, c] = await Promise.all([connectPusher(herald), connectPusher(herald), connectPusher(herald)]);
  const name = unique('wh-counted-');
  const counted = () => main.events(webhookEvent('subscription_count', name));
  const steps = [
    [() => subscribe(a, name), 1],
    [() => subscribe(b, name), 2],
    [() => subscribe(c, name), 3],
    [async () => b.unsubscribe(name), 2],
    [() => disconnect(c), 1],
  ];
  for (const [i, [what, n]] of steps.entries()) {
    await what();
    // The i-th webhook of this channel, not any with the same count: the last step's count (1)
    // was already seen after the first one.
    await main.waitFor(() => counted().length > i, `subscription_count webhook ${i + 1} (${n})`);
    const { req, ...event } = counted()[i];
    verified(req, sdk);
    assert.deepEqual(event, { name: 'subscription_count', channel: name, subscription_count: n });
  }
  await mainSentinel();
  assert.deepEqual(counted().map((e) => e.subscription_count), [1, 2, 3, 2, 1], 'one webhook per transition, in order');
});

test('a target answering 500 twice then 200 gets the event exactly once', async () => {
  const pusher = await connectPusher(herald, { app: herald.app('222') });
  const name = unique('wh-flaky-');
  await subscribe(pusher, name);
  const { req } = await hook(flaky, webhookEvent('channel_occupied', name), 'the third attempt', flakySdk, RETRY_WAIT_MS);
  const attempts = flaky.requests.filter((r) => r.rawBody.includes(JSON.stringify(name)));
  assert.deepEqual(
    attempts.map((r) => r.status),
    [500, 500, 200],
    'two failed attempts, then one success',
  );
  // Retries resend the same request: same body (time_ms is the creation time) and signature.
  assert.ok(attempts.every((r) => r.rawBody === req.rawBody && r.headers['x-pusher-signature'] === req.headers['x-pusher-signature']));
  assert.ok(attempts[1].at > attempts[0].at && attempts[2].at > attempts[1].at);

  // Sentinel: a later occupation is delivered (first try), and the first event was not resent.
  const other = unique('wh-flaky-sentinel-');
  await subscribe(pusher, other);
  await hook(flaky, webhookEvent('channel_occupied', other), 'sentinel occupied', flakySdk);
  assert.equal(flaky.events(webhookEvent('channel_occupied', name)).length, 1, 'delivered more than once');
  assert.equal(flaky.requests.filter((r) => r.rawBody.includes(JSON.stringify(name))).length, 3);
});

test('a dead target stops neither channel events to pusher-js nor webhooks to a healthy target', async () => {
  const app = herald.app('333');
  const [a, b] = await Promise.all([connectPusher(herald, { app }), connectPusher(herald, { app })]);
  // Enough transitions that the dead target fails past the breaker threshold (3) early on.
  for (let i = 0; i < 6; i++) {
    const name = unique('wh-dead-');
    const [chA] = await Promise.all([subscribe(a, name), subscribe(b, name)]);
    await hook(healthy, webhookEvent('channel_occupied', name), `occupied on the healthy target (${i})`, deadSdk);
    await hook(
      healthy,
      webhookEvent('subscription_count', name, { subscription_count: 2 }),
      `subscription_count on the healthy target (${i})`,
      deadSdk,
    );
    const got = nextEvent(chA, 'tick');
    const started = Date.now();
    await deadSdk.trigger(name, 'tick', { i });
    assert.deepEqual(await b.rec.waitEvent('tick', name).then((m) => m.data), { i });
    assert.deepEqual((await got).data, { i });
    assert.ok(Date.now() - started < 2000, 'channel delivery slowed down by the dead webhook target');
    a.unsubscribe(name);
    b.unsubscribe(name);
    await hook(healthy, webhookEvent('channel_vacated', name), `vacated on the healthy target (${i})`, deadSdk);
  }
  assert.equal(a.connection.state, 'connected');
  // herald logs (at warn, the launcher's default level) when the dead endpoint's breaker opens.
  if (!process.env.HERALD_RUST_LOG) {
    const opened = () => herald.output().split('\n').some((l) => l.includes('circuit breaker open') && l.includes(deadUrl));
    const deadline = Date.now() + 8000;
    while (!opened() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50)); // log poll with a deadline
    assert.ok(opened(), `no "circuit breaker open" warning for ${deadUrl} in herald's output:\n${herald.output()}`);
    assert.ok(!herald.output().includes(healthy.url), 'the healthy target was reported failing');
  }
});
