// Shared helpers for the JS compat suites: real pusher-js / laravel-echo clients, the Node server
// SDK, and waits that always carry a deadline.

import { createServer } from 'node:http';
import Pusher from 'pusher-js';
import PusherServer from 'pusher';
import Echo from 'laravel-echo';
import WebSocket from 'ws';
import { HOST } from './herald.mjs';

export const WAIT_MS = 8_000;

/** Resolve with `promise` or reject after `ms` naming what was awaited. */
export function withTimeout(promise, what, ms = WAIT_MS) {
  let timer;
  const timeout = new Promise((_, rej) => {
    timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The Node server SDK pointed at herald. */
export function serverSdk(herald, app = herald.app(), extra = {}) {
  return new PusherServer({
    ...extra,
    appId: app.id,
    key: app.key,
    secret: app.secret,
    host: HOST,
    port: String(herald.port),
    useTLS: false,
    timeout: WAIT_MS,
  });
}

/**
 * A pusher-js `channelAuthorization.customHandler` that signs with the Node SDK's
 * `authorizeChannel`, as an application's auth endpoint would. `presence(channelName, socketId)`
 * returns the presence data (`{user_id, user_info}`) for presence channels. `tamper(auth)`
 * lets a test corrupt the result.
 */
export function sdkAuthorizer(sdk, { presence, tamper } = {}) {
  return (params, callback) => {
    try {
      const { socketId, channelName } = params;
      const data = channelName.startsWith('presence-') && presence ? presence(channelName, socketId) : undefined;
      let auth = sdk.authorizeChannel(socketId, channelName, data);
      if (tamper) auth = tamper(auth);
      callback(null, auth);
    } catch (e) {
      callback(e, null);
    }
  };
}

/**
 * A tiny Laravel-like auth endpoint (`POST /broadcasting/auth`, form fields socket_id and
 * channel_name) on 127.0.0.1 that answers with the Node SDK's `authorizeChannel`.
 * `user(req)` gives the presence data; `deny(channelName)` → 403 like Laravel.
 */
export async function startAuthEndpoint(sdk, { user, deny } = {}) {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const form = new URLSearchParams(body);
      const socketId = form.get('socket_id');
      const channelName = form.get('channel_name');
      if (!socketId || !channelName || (deny && deny(channelName))) {
        res.writeHead(403, { 'content-type': 'application/json' });
        res.end('{"message":"Forbidden"}');
        return;
      }
      const data = channelName.startsWith('presence-') && user ? user(req, channelName) : undefined;
      const auth = sdk.authorizeChannel(socketId, channelName, data);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(auth));
    });
  });
  await new Promise((res) => server.listen(0, HOST, res));
  return {
    url: `http://${HOST}:${server.address().port}/broadcasting/auth`,
    close: () => new Promise((res) => server.close(() => res())),
  };
}

/** pusher-js options pointing at herald over plain ws only. */
export function pusherOptions(herald, extra = {}) {
  return {
    cluster: 'mt1',
    wsHost: HOST,
    wsPort: herald.port,
    wssPort: herald.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    enableStats: false,
    ...extra,
  };
}

/**
 * Records every frame a pusher-js client decodes (internal ones included) so tests can wait for
 * one or check afterwards that one never came.
 */
export class Recorder {
  constructor(pusher) {
    this.messages = [];
    this.waiters = [];
    pusher.connection.bind('message', (m) => {
      this.messages.push(m);
      this.waiters = this.waiters.filter((w) => {
        if (w.pred(m)) {
          w.resolve(m);
          return false;
        }
        return true;
      });
    });
  }

  /** First recorded message (past or future) satisfying `pred`. */
  waitFor(pred, what = 'a matching message', ms = WAIT_MS) {
    const seen = this.messages.find(pred);
    if (seen) return Promise.resolve(seen);
    const p = new Promise((resolve) => this.waiters.push({ pred, resolve }));
    return withTimeout(p, what, ms);
  }

  /** Wait for `event` (on `channel` if given). */
  waitEvent(event, channel, ms = WAIT_MS) {
    return this.waitFor(
      (m) => m.event === event && (channel === undefined || m.channel === channel),
      `${event}${channel ? ` on ${channel}` : ''}`,
      ms,
    );
  }

  events(event, channel) {
    return this.messages.filter((m) => m.event === event && (channel === undefined || m.channel === channel));
  }
}

// Every pusher-js client a test made, so `cleanup()` can close them all (open sockets would keep
// the test process alive).
const live = new Set();
const rawLive = new Set();

/** Close every client the helpers created. Call from `afterEach`. */
export async function cleanup() {
  const all = [...live];
  live.clear();
  for (const ws of rawLive) ws.close();
  rawLive.clear();
  await Promise.allSettled(all.map((p) => disconnect(p)));
}

/** A new, not yet connected pusher-js client (tracked for `cleanup()`), Recorder at `.rec`. */
export function newPusher(herald, { app = herald.app(), ...extra } = {}) {
  const pusher = new Pusher(app.key, pusherOptions(herald, extra));
  pusher.rec = new Recorder(pusher);
  live.add(pusher);
  return pusher;
}

/** A connected pusher-js client with a Recorder at `.rec`. */
export async function connectPusher(herald, opts = {}) {
  const pusher = newPusher(herald, opts);
  await waitConnected(pusher);
  return pusher;
}

export function waitConnected(pusher) {
  if (pusher.connection.state === 'connected') return Promise.resolve(pusher);
  return withTimeout(
    new Promise((resolve, reject) => {
      const onState = ({ current }) => {
        if (current === 'connected') {
          pusher.connection.unbind('state_change', onState);
          resolve(pusher);
        } else if (current === 'failed' || current === 'unavailable') {
          pusher.connection.unbind('state_change', onState);
          reject(new Error(`pusher-js connection went ${current}`));
        }
      };
      pusher.connection.bind('state_change', onState);
    }),
    'pusher-js to connect',
  );
}

/**
 * Subscribe and wait for `pusher:subscription_succeeded`; reject on `pusher:subscription_error`
 * or on a connection-level `pusher:error` (herald's answer to a refused subscribe).
 */
export function subscribe(pusher, name) {
  const channel = pusher.subscribe(name);
  return withTimeout(
    new Promise((resolve, reject) => {
      const cleanup = () => {
        channel.unbind('pusher:subscription_succeeded', ok);
        channel.unbind('pusher:subscription_error', bad);
        pusher.unbind('pusher:error', bad);
      };
      const ok = (data) => {
        cleanup();
        resolve({ channel, data });
      };
      const bad = (err) => {
        cleanup();
        const e = new Error(`subscribe ${name} failed: ${JSON.stringify(err)}`);
        e.detail = err;
        reject(e);
      };
      channel.bind('pusher:subscription_succeeded', ok);
      channel.bind('pusher:subscription_error', bad);
      pusher.bind('pusher:error', bad);
    }),
    `subscription_succeeded on ${name}`,
  ).then(({ channel }) => channel);
}

/** Wait for `event` bound on a pusher-js channel; resolves with `{data, metadata}`. */
export function nextEvent(channel, event, ms = WAIT_MS) {
  return withTimeout(
    new Promise((resolve) => {
      const cb = (data, metadata) => {
        channel.unbind(event, cb);
        resolve({ data, metadata });
      };
      channel.bind(event, cb);
    }),
    `${event} on ${channel.name}`,
    ms,
  );
}

/** Disconnect a pusher-js client and wait until it is fully closed. */
export async function disconnect(pusher) {
  if (!pusher || pusher.connection.state === 'disconnected') return;
  const done = new Promise((resolve) => {
    pusher.connection.bind('state_change', ({ current }) => {
      if (current === 'disconnected') resolve();
    });
  });
  pusher.disconnect();
  await withTimeout(done, 'pusher-js to disconnect');
}

/** A Laravel Echo instance (pusher or reverb broadcaster) on a fresh pusher-js connection. */
export async function connectEcho(herald, { broadcaster = 'reverb', app = herald.app(), ...extra } = {}) {
  const options = {
    broadcaster,
    key: app.key,
    Pusher,
    withoutInterceptors: true,
    ...pusherOptions(herald),
    ...extra,
  };
  if (broadcaster === 'reverb') delete options.cluster; // Echo forces cluster '' for reverb
  const echo = new Echo(options);
  echo.connector.pusher.rec = new Recorder(echo.connector.pusher);
  live.add(echo.connector.pusher);
  await waitConnected(echo.connector.pusher);
  return echo;
}

export async function disconnectEcho(echo) {
  if (echo) await disconnect(echo.connector.pusher);
}

/** A raw `ws` connection speaking the Pusher protocol, for asserting exact frames. */
export async function rawClient(herald, { key = herald.app().key, query = 'protocol=7&client=js&version=8.6.0&flash=false' } = {}) {
  const ws = new WebSocket(`ws://${HOST}:${herald.port}/app/${key}?${query}`);
  const frames = [];
  const waiters = [];
  let closed = null;
  const closeWaiters = [];
  ws.on('message', (buf, isBinary) => {
    if (isBinary) return;
    const frame = JSON.parse(buf.toString());
    frames.push(frame);
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i].pred(frame)) {
        waiters[i].resolve(frame);
        waiters.splice(i, 1);
      }
    }
  });
  ws.on('close', (code, reason) => {
    closed = { code, reason: reason.toString() };
    closeWaiters.forEach((r) => r(closed));
  });
  await withTimeout(
    new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    }),
    'raw websocket to open',
  );
  rawLive.add(ws);
  const client = {
    ws,
    frames,
    send: (obj) => ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj)),
    waitFor(pred, what = 'a matching frame', ms = WAIT_MS) {
      const seen = frames.find(pred);
      if (seen) return Promise.resolve(seen);
      return withTimeout(new Promise((resolve) => waiters.push({ pred, resolve })), what, ms);
    },
    waitEvent(event, channel, ms = WAIT_MS) {
      return client.waitFor(
        (f) => f.event === event && (channel === undefined || f.channel === channel),
        `${event}${channel ? ` on ${channel}` : ''}`,
        ms,
      );
    },
    waitClose(ms = WAIT_MS) {
      if (closed) return Promise.resolve(closed);
      return withTimeout(new Promise((r) => closeWaiters.push(r)), 'the server to close the websocket', ms);
    },
    close() {
      if (!closed) ws.close();
    },
  };
  return client;
}

/** JSON.parse a frame's `data` if it is a string. */
export function dataOf(frame) {
  return typeof frame.data === 'string' ? JSON.parse(frame.data) : frame.data;
}

let counter = 0;
/** A channel name unique within this process. */
export function unique(prefix) {
  counter += 1;
  return `${prefix}${process.pid}-${counter}`;
}
