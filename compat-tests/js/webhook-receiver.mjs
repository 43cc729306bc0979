// A real HTTP server on 127.0.0.1 that receives herald's webhooks for the compat tests.
//
// Every request is recorded with its raw body and lower-cased headers, the status it was
// answered with and when it arrived. `respond(n, raw)` picks the status of the n-th request
// (1-based; default 200), so a test can make a target fail a few times. Tests wait for what
// they expect with `waitFor`, which always has a deadline.

import { createServer } from 'node:http';
import { HOST } from './herald.mjs';
import { WAIT_MS, withTimeout } from './helpers.mjs';

export async function startReceiver({ respond = () => 200 } = {}) {
  const requests = [];
  let waiters = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8');
      let body;
      try {
        body = JSON.parse(rawBody);
      } catch {
        body = undefined;
      }
      const entry = {
        method: req.method,
        url: req.url,
        headers: req.headers, // node lower-cases header names, as the Node SDK's webhook() expects
        rawBody,
        body,
        at: Date.now(),
        n: requests.length + 1,
      };
      entry.status = respond(entry.n, entry);
      requests.push(entry);
      res.writeHead(entry.status, { 'content-type': 'text/plain' });
      res.end(entry.status < 300 ? 'ok' : 'fail');
      waiters = waiters.filter((w) => {
        const hit = w.pred(entry);
        if (hit) w.resolve(entry);
        return !hit;
      });
    });
  });
  await new Promise((res) => server.listen(0, HOST, res));
  const { port } = server.address();

  const receiver = {
    url: `http://${HOST}:${port}/hook`,
    requests,
    /** Requests answered 2xx. */
    accepted: () => requests.filter((r) => r.status < 300),
    /** First request (past or future) satisfying `pred`. */
    waitFor(pred, what = 'a matching webhook request', ms = WAIT_MS) {
      const seen = requests.find(pred);
      if (seen) return Promise.resolve(seen);
      return withTimeout(new Promise((resolve) => waiters.push({ pred, resolve })), what, ms);
    },
    /** First accepted request carrying an event that satisfies `pred`; resolves `{req, event}`. */
    async waitEvent(pred, what = 'a matching webhook event', ms = WAIT_MS) {
      const has = (r) => r.status < 300 && (r.body?.events ?? []).some(pred);
      const req = await receiver.waitFor(has, what, ms);
      return { req, event: req.body.events.find(pred) };
    },
    /** Every event of every accepted request (one entry per delivery), with its request. */
    events(pred = () => true) {
      return receiver
        .accepted()
        .flatMap((r) => (r.body?.events ?? []).map((event) => ({ ...event, req: r })))
        .filter(pred);
    },
    close: () =>
      new Promise((res) => {
        server.closeAllConnections?.();
        server.close(() => res());
      }),
  };
  return receiver;
}

/** `pred` for an event named `name` on `channel`, optionally with more fields equal. */
export function webhookEvent(name, channel, fields = {}) {
  return (e) => e.name === name && e.channel === channel && Object.entries(fields).every(([k, v]) => e[k] === v);
}
