// What the plugin's tests share: herald with a history app, the compat suites' helpers (real
// pusher-js, laravel-echo and the Pusher Node SDK from compat-tests/node_modules), an inbox of
// the events a channel delivered, and a cut of a client's network through a relay.

import { startHerald, defaultApp } from '../../../../compat-tests/js/herald.mjs';
import { WAIT_MS, withTimeout } from '../../../../compat-tests/js/helpers.mjs';

export * from '../../../../compat-tests/js/helpers.mjs';
export { startRelay } from './relay.mjs';

export const MAX_EVENTS = 1000;
export const EVENT = 'order-updated';

/** herald whose app keeps the history of `orders-*` and `private-orders-*` channels. */
export function startHistoryHerald() {
  const app = defaultApp({
    max_batch_size: 100,
    history: [
      { channels: 'orders-*', max_events: MAX_EVENTS, max_age_seconds: 300 },
      { channels: 'private-orders-*', max_events: MAX_EVENTS, max_age_seconds: 300 },
    ],
  });
  return startHerald({ apps: [app] });
}

/**
 * The `n` of every EVENT a receiver got, in arrival order. `bind(fn)` gives the callback to
 * hand to pusher-js / laravel-echo; `until(count)` waits for at least `count` events.
 */
export class Inbox {
  constructor() {
    this.ns = [];
    this.waiters = [];
    this.take = (data) => {
      this.ns.push(data.n);
      this.waiters = this.waiters.filter((w) => (this.ns.length >= w.count ? (w.resolve(), false) : true));
    };
  }

  until(count, ms = WAIT_MS) {
    if (this.ns.length >= count) return Promise.resolve();
    const reached = new Promise((resolve) => this.waiters.push({ count, resolve }));
    return withTimeout(reached, `${count} events (have ${this.ns.length}: ${this.ns.slice(-5)})`, ms);
  }
}

/** Numbers from..to, inclusive. */
export function range(from, to) {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** Callbacks that record their calls; `next()` waits for the next call (or one already made). */
export class Calls {
  constructor() {
    this.calls = [];
    this.waiters = [];
    this.fn = (...args) => {
      this.calls.push(args);
      const waiter = this.waiters.shift();
      if (waiter) waiter(args);
    };
    this.taken = 0;
  }

  /** The next call not yet taken by `next()`. */
  next(what, ms = WAIT_MS) {
    const index = this.taken++;
    if (index < this.calls.length) return Promise.resolve(this.calls[index]);
    return withTimeout(new Promise((resolve) => this.waiters.push(resolve)), what, ms);
  }
}

/** Waits for pusher-js's connection to reach `state`. */
export function stateReached(pusher, state, ms = WAIT_MS) {
  if (pusher.connection.state === state) return Promise.resolve();
  return withTimeout(
    new Promise((resolve) => {
      const on = ({ current }) => {
        if (current === state) {
          pusher.connection.unbind('state_change', on);
          resolve();
        }
      };
      pusher.connection.bind('state_change', on);
    }),
    `pusher-js to be ${state}`,
    ms,
  );
}

/**
 * Takes the client's network away: the relay holds new connections, every open one is cut,
 * and this resolves once pusher-js has noticed (it is `connecting` again). Call `release()` on
 * the relay to let it back.
 */
export async function cutAway(relay, pusher) {
  relay.hold();
  relay.cut();
  await stateReached(pusher, 'connecting');
}

/** Publishes EVENT with `n` = from..to on `channel`, one after the other (each answered first). */
export async function publish(sdk, channel, from, to) {
  for (let n = from; n <= to; n++) await sdk.trigger(channel, EVENT, { n });
}

/**
 * Publishes EVENT with n = 1, 2, … on one channel, in order, up to a limit the test raises with
 * `allow(n)`; so a test decides which events are published while its client is away, and events
 * can keep flowing while the connection is cut. `allow(n)` resolves when n are published.
 */
export class Publisher {
  constructor(sdk, channel) {
    this.sdk = sdk;
    this.channel = channel;
    this.published = 0;
    this.target = 0;
    this.running = null;
    this.failure = null;
    this.waiters = [];
  }

  allow(n) {
    this.target = Math.max(this.target, n);
    if (!this.running) this.running = this.run();
    if (this.failure) return Promise.reject(this.failure);
    if (this.published >= n) return Promise.resolve();
    const reached = new Promise((resolve, reject) => this.waiters.push({ n, resolve, reject }));
    return withTimeout(reached, `${n} events published (have ${this.published})`);
  }

  async run() {
    try {
      while (this.published < this.target) {
        await this.sdk.trigger(this.channel, EVENT, { n: this.published + 1 });
        this.published += 1;
        this.waiters = this.waiters.filter((w) => (this.published >= w.n ? (w.resolve(), false) : true));
      }
    } catch (error) {
      this.failure = error;
      for (const w of this.waiters) w.reject(error);
      this.waiters = [];
    } finally {
      this.running = null;
    }
  }
}

/**
 * Subscribes, binds `inbox` to EVENT at once (as an app does: a recovery replays right after
 * `pusher:subscription_succeeded`, possibly in the same read), and waits for the subscription.
 */
export async function subscribeInto(pusher, name, inbox) {
  const channel = pusher.subscribe(name);
  channel.bind(EVENT, inbox.take);
  await withTimeout(
    new Promise((resolve, reject) => {
      channel.bind('pusher:subscription_succeeded', resolve);
      channel.bind('pusher:subscription_error', (e) => reject(new Error(`subscribe ${name}: ${JSON.stringify(e)}`)));
    }),
    `subscription_succeeded on ${name}`,
  );
  return channel;
}
