// Memory per idle connection on herald's non-WebSocket transports: opens N Server-Sent Events
// streams (GET /app/{key}/events) or N xhr_streaming sessions (pusher-js's HTTP fallback),
// each subscribed to one of `channels` channels, waits until every one has its
// subscription_succeeded, and reads the server's RSS (VmRSS of --pid) before and after.
// Node's core http only; 127.0.0.1 only.
//
//   node bench/transports/idle.mjs --url http://127.0.0.1:6001 --key key1 --pid PID \
//        --transport sse|xhr --connections 1000 [--channels 100]

import http from 'node:http';
import { readFileSync } from 'node:fs';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []),
);
const url = new URL(args.url ?? 'http://127.0.0.1:6001');
if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) throw new Error('loopback only');
const key = args.key ?? 'key1';
const pid = Number(args.pid);
const transport = args.transport ?? 'sse';
const connections = Number(args.connections ?? 1000);
const channels = Number(args.channels ?? 100);
const TIMEOUT_MS = 60_000;

const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;

/** Opens one stream; resolves with its response once `subscription_succeeded` arrived. */
function open(i) {
  const channel = `idle-${i % channels}`;
  const options =
    transport === 'sse'
      ? { method: 'GET', path: `/app/${key}/events?channels=${channel}` }
      : { method: 'POST', path: `/pusher/app/${key}/${i % 1000}/idle${i}/xhr_streaming?protocol=7` };
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, agent, ...options }, (res) => {
      let seen = '';
      res.setEncoding('utf8');
      res.on('data', async (chunk) => {
        seen += chunk;
        if (transport === 'xhr' && seen.includes('connection_established') && !res.subscribed) {
          res.subscribed = true;
          const sub = JSON.stringify([JSON.stringify({ event: 'pusher:subscribe', data: { channel, auth: '' } })]);
          const send = http.request({ host: url.hostname, port: url.port, agent, method: 'POST',
            path: `/pusher/app/${key}/${i % 1000}/idle${i}/xhr_send`, headers: { 'content-type': 'application/json' } });
          send.on('response', (r) => r.resume());
          send.on('error', reject);
          send.end(sub);
        }
        if (seen.includes('subscription_succeeded')) {
          seen = '';
          resolve(res);
        }
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const before = rss();
const started = Date.now();
const open_ = [];
for (let i = 0; i < connections; i += 100) {
  const batch = [];
  for (let j = i; j < Math.min(i + 100, connections); j++) batch.push(open(j));
  open_.push(...(await Promise.all(batch)));
  if (Date.now() - started > TIMEOUT_MS) throw new Error('connecting took too long');
}
const seconds = (Date.now() - started) / 1000;
await new Promise((r) => setTimeout(r, 2000)); // let the server settle before reading its RSS
const after = rss();
console.log(
  JSON.stringify({
    transport,
    connections,
    channels,
    connect_seconds: seconds,
    server_rss_before_bytes: before,
    server_rss_idle_bytes: after,
    server_rss_per_connection_bytes: Math.round((after - before) / connections),
  }),
);
for (const res of open_) res.destroy();
process.exit(0);
