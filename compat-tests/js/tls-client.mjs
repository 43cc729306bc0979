// Child process of tls.test.mjs (not a test file itself): a pusher-js client with
// `forceTLS: true`. pusher-js's Node transport (faye-websocket) takes no TLS options, so the
// parent trusts its self-signed certificate through NODE_EXTRA_CA_CERTS, which Node reads only
// at start-up — hence a separate process.
//
// argv: key port channel event. Writes one JSON line per step to stdout:
// {"step":"connected","socketId":…}, {"step":"subscribed"}, {"step":"event","data":…};
// {"step":"error",…} on failure. Exits after the event, on failure, or after 15 s.

import Pusher from 'pusher-js';

const [key, port, channelName, eventName] = process.argv.slice(2);
const say = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
const deadline = setTimeout(() => {
  say({ step: 'error', error: 'child deadline reached' });
  process.exit(2);
}, 15_000);

const pusher = new Pusher(key, {
  cluster: 'mt1',
  wsHost: '127.0.0.1',
  wsPort: 1, // never used: forceTLS picks wssPort
  wssPort: Number(port),
  forceTLS: true,
  enabledTransports: ['ws'],
  enableStats: false,
});
pusher.connection.bind('error', (e) => say({ step: 'error', error: JSON.stringify(e, Object.getOwnPropertyNames(e)) }));
pusher.connection.bind('state_change', ({ current }) => {
  if (current === 'unavailable' || current === 'failed') say({ step: 'error', error: `state ${current}` });
});
pusher.connection.bind('connected', () => {
  say({ step: 'connected', socketId: pusher.connection.socket_id, url: pusher.connection.connection?.transport?.url });
  const channel = pusher.subscribe(channelName);
  channel.bind('pusher:subscription_succeeded', () => say({ step: 'subscribed' }));
  channel.bind(eventName, (data) => {
    say({ step: 'event', data });
    clearTimeout(deadline);
    pusher.disconnect();
    setImmediate(() => process.exit(0));
  });
});
