// Three herald nodes sharing one Redis, with pusher-js clients spread over them and the Node SDK
// talking to any node: a client cannot tell one node from three (issue 4).

import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createConnection } from 'node:net';
import { startHerald, freePort, HOST } from './herald.mjs';
import {
  cleanup,
  connectPusher,
  disconnect,
  nextEvent,
  sdkAuthorizer,
  serverSdk,
  subscribe,
  unique,
  withTimeout,
} from './helpers.mjs';

let redis;
let nodes = [];
let sdks = [];

/** Resolves once something accepts TCP connections on 127.0.0.1:port. */
function accepting(port) {
  return new Promise((resolve) => {
    const socket = createConnection({ host: HOST, port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

before(async () => {
  if (spawnSync('redis-server', ['--version']).status !== 0) throw new Error('redis-server is not installed');
  const port = await freePort();
  redis = spawn('redis-server', ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  const deadline = Date.now() + 10_000;
  while (!(await accepting(port))) {
    if (Date.now() > deadline) throw new Error('redis-server did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  const adapter = { driver: 'redis', url: `redis://${HOST}:${port}`, prefix: unique('compat') };
  for (let i = 0; i < 3; i++) nodes.push(await startHerald({ adapter }));
  sdks = nodes.map((n) => serverSdk(n));
});
afterEach(cleanup);
after(() => {
  for (const n of nodes) n.stop();
  redis?.kill('SIGKILL');
});

function asUser(node, user_id, user_info) {
  return connectPusher(node, {
    channelAuthorization: { customHandler: sdkAuthorizer(sdks[0], { presence: () => ({ user_id, user_info }) }) },
  });
}

test('an event triggered on one node reaches pusher-js clients on every node once', async () => {
  const name = unique('news-');
  const clients = await Promise.all(nodes.map((n) => connectPusher(n)));
  const channels = await Promise.all(clients.map((c) => subscribe(c, name)));
  const got = channels.map((ch) => nextEvent(ch, 'headline'));
  await sdks[1].trigger(name, 'headline', { n: 1 });
  for (const { data } of await Promise.all(got)) assert.deepEqual(data, { n: 1 });
  // No duplicates: the next event each client sees is the sentinel, not a second headline.
  const seen = channels.map(() => []);
  channels.forEach((ch, i) => ch.bind('headline', () => seen[i].push('dup')));
  const sentinels = channels.map((ch) => nextEvent(ch, 'sentinel'));
  await sdks[2].trigger(name, 'sentinel', {});
  await Promise.all(sentinels);
  assert.deepEqual(seen, [[], [], []]);
  await Promise.all(clients.map(disconnect));
});

test('socket_id exclusion holds when the excluded socket is on another node', async () => {
  const name = unique('excl-');
  const [a, b] = await Promise.all([connectPusher(nodes[0]), connectPusher(nodes[1])]);
  const [chA, chB] = await Promise.all([subscribe(a, name), subscribe(b, name)]);
  let excludedGotIt = false;
  chA.bind('hello', () => (excludedGotIt = true));
  const onB = nextEvent(chB, 'hello');
  await sdks[2].trigger(name, 'hello', {}, { socket_id: a.connection.socket_id });
  await onB;
  const sentinel = nextEvent(chA, 'sentinel');
  await sdks[2].trigger(name, 'sentinel', {});
  await sentinel;
  assert.equal(excludedGotIt, false);
  await Promise.all([disconnect(a), disconnect(b)]);
});

test('presence rosters, member events and the HTTP reads agree across nodes', async () => {
  const name = `presence-${unique('room-')}`;
  const ada = await asUser(nodes[0], 'ada', { name: 'Ada' });
  const chAda = await subscribe(ada, name);
  const bobAdded = nextEvent(chAda, 'pusher:member_added');
  const bob = await asUser(nodes[2], 'bob', { name: 'Bob' });
  const chBob = await subscribe(bob, name);
  assert.equal(chBob.members.count, 2, 'the roster includes the member on another node');
  assert.deepEqual(chBob.members.get('ada').info, { name: 'Ada' });
  assert.equal((await bobAdded).data.id, 'bob');

  // Ada's second socket, on a third node: no member_added anywhere.
  let extraAdds = 0;
  chBob.bind('pusher:member_added', () => extraAdds++);
  const ada2 = await asUser(nodes[1], 'ada', { name: 'Ada' });
  await subscribe(ada2, name);
  for (const sdk of sdks) {
    const users = await (await sdk.get({ path: `/channels/${name}/users` })).json();
    assert.deepEqual(users.users.map((u) => u.id).sort(), ['ada', 'bob']);
    const info = await (await sdk.get({ path: `/channels/${name}`, params: { info: 'user_count,subscription_count' } })).json();
    assert.equal(info.user_count, 2);
    assert.equal(info.subscription_count, 3);
  }
  assert.equal(extraAdds, 0);

  // Ada leaves one socket: still a member. The last one: member_removed, once.
  const removed = nextEvent(chBob, 'pusher:member_removed');
  await disconnect(ada);
  const sentinel = nextEvent(chBob, 'sentinel');
  await sdks[0].trigger(name, 'sentinel', {});
  await sentinel;
  assert.equal(chBob.members.count, 2);
  await disconnect(ada2);
  assert.equal((await removed).data.id, 'ada');
  assert.equal(chBob.members.count, 1);
  await disconnect(bob);
});

test('client events cross nodes once and never come back to the sender', async () => {
  const name = `private-${unique('chat-')}`;
  const opts = { channelAuthorization: { customHandler: sdkAuthorizer(sdks[0]) } };
  const [a, b] = await Promise.all([connectPusher(nodes[0], opts), connectPusher(nodes[2], opts)]);
  const [chA, chB] = await Promise.all([subscribe(a, name), subscribe(b, name)]);
  let echoed = false;
  chA.bind('client-typing', () => (echoed = true));
  const got = nextEvent(chB, 'client-typing');
  chA.trigger('client-typing', { typing: true });
  assert.deepEqual((await got).data, { typing: true });
  const sentinel = nextEvent(chA, 'sentinel');
  await sdks[1].trigger(name, 'sentinel', {});
  await withTimeout(sentinel, 'sentinel');
  assert.equal(echoed, false);
  await Promise.all([disconnect(a), disconnect(b)]);
});
