// A TCP relay on 127.0.0.1 between a client and herald, so a test can take the network away:
// `cut()` destroys every relayed connection (the client sees its WebSocket drop, code 1006, and
// pusher-js reconnects by itself); `hold()` keeps new connections waiting, unanswered, until
// `release()`, so events can be published while the client is certainly away.

import { connect, createServer } from 'node:net';

const HOST = '127.0.0.1';

export async function startRelay(targetPort) {
  const open = new Set(); // every socket of every relayed connection
  const held = new Set(); // client sockets waiting for `release()`
  let holding = false;

  function relay(client) {
    const upstream = connect(targetPort, HOST);
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ]) {
      open.add(a);
      a.on('error', () => b.destroy());
      a.on('close', () => {
        open.delete(a);
        b.destroy();
      });
      a.pipe(b);
    }
  }

  const server = createServer((client) => {
    if (!holding) return relay(client);
    held.add(client);
    client.on('error', () => {});
    client.on('close', () => held.delete(client));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, resolve);
  });

  return {
    port: server.address().port,
    /** Destroy every relayed connection, as a network failure would. */
    cut() {
      for (const socket of open) socket.destroy();
    },
    hold() {
      holding = true;
    },
    release() {
      holding = false;
      for (const client of held) {
        held.delete(client);
        client.removeAllListeners('close');
        relay(client);
      }
    },
    async close() {
      for (const socket of [...open, ...held]) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
