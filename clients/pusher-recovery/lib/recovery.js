// withRecovery: wraps one pusher-js instance so that on every (re)connection it asks herald for
// what each history channel missed, before pusher-js resubscribes it.
//
// Owns: the instance's wrapped `subscribe`, `subscribeAll` and `unsubscribe`; the hook on the
// current transport that reads raw frames (pusher-js's decoded events drop the `position`
// field); the requests waiting for an answer on the current connection. It never decodes or
// delivers events for the app: pusher-js does, through the app's usual `bind` callbacks.

import { PositionBook } from './book.js';
import { channelMatcher, isPosition } from './positions.js';
import { call } from './report.js';

const RECOVER = 'herald:recover';
const RECOVERED = 'herald:recovered';
const RECOVERY_FAILED = 'herald:recovery_failed';
const LATEST = 'latest';
const WRAPPED = Symbol.for('herald-pusher-recovery');
const METHODS = ['subscribe', 'subscribeAll', 'unsubscribe'];

/**
 * Wraps `pusher` (a pusher-js 7+ instance; with laravel-echo, `echo.connector.pusher`).
 * Returns `{detach(), position(channel)}`. See README.md for the options.
 */
export function withRecovery(pusher, options = {}) {
  checkPusher(pusher);
  checkOptions(options);
  const recovery = new Recovery(pusher, options);
  return {
    detach: () => recovery.detach(),
    position: (channel) => recovery.book.get(channel),
  };
}

class Recovery {
  constructor(pusher, options) {
    this.pusher = pusher;
    this.matches = channelMatcher(options.channels);
    this.onRecovered = options.onRecovered;
    this.onRecoveryFailed = options.onRecoveryFailed;
    this.book = new PositionBook(options.storage);
    this.detached = false;
    this.connection = null; // the pusher-js Connection whose transport `onFrame` listens to
    this.transport = null;
    this.asked = new Map(); // channel → `since` requested on this connection, not answered yet
    this.onFrame = (eventName, message) => this.frame(eventName, message);
    this.install();
    if (pusher.connection.state === 'connected') this.joinConnected();
  }

  install() {
    const self = this;
    const saved = {};
    const wrappers = {
      subscribe(name) {
        if (!self.detached && self.pusher.connection.state === 'connected') {
          self.follow();
          if (willSubscribe(self.pusher, name)) self.ask(name); // before pusher:subscribe
        }
        return saved.subscribe.fn.apply(this, arguments);
      },
      // Called by pusher-js on 'connected', with the new Connection in place: it resubscribes
      // every channel through `subscribe` above, which asks for each one's missed events first.
      subscribeAll() {
        if (!self.detached) self.follow();
        return saved.subscribeAll.fn.apply(this, arguments);
      },
      unsubscribe(name) {
        if (!self.detached) {
          self.book.remove(name);
          self.asked.delete(name);
        }
        return saved.unsubscribe.fn.apply(this, arguments);
      },
    };
    for (const method of METHODS) {
      saved[method] = { own: Object.prototype.hasOwnProperty.call(this.pusher, method), fn: this.pusher[method] };
      this.pusher[method] = wrappers[method];
    }
    this.saved = saved;
    this.wrappers = wrappers;
    this.pusher[WRAPPED] = this;
  }

  detach() {
    if (this.detached) return;
    this.detached = true;
    for (const method of METHODS) {
      // Wrapped again by someone else since: leave theirs; ours now only passes calls through.
      if (this.pusher[method] !== this.wrappers[method]) continue;
      if (this.saved[method].own) this.pusher[method] = this.saved[method].fn;
      else delete this.pusher[method];
    }
    if (this.transport) this.transport.unbind_global(this.onFrame);
    this.transport = null;
    this.connection = null;
    this.asked.clear();
    if (this.pusher[WRAPPED] === this) delete this.pusher[WRAPPED];
  }

  // Wrapped while connected: channels already subscribed (or on their way) are asked now; herald
  // replays only what their subscriptions did not bring.
  joinConnected() {
    this.follow();
    for (const channel of this.pusher.allChannels()) {
      if (channel.subscribed || channel.subscriptionPending) this.ask(channel.name);
    }
  }

  // Listens to the raw frames of the current connection. pusher-js makes a new Connection (and
  // transport) for every connection; the old one is closed and emits nothing more.
  follow() {
    const current = this.pusher.connection.connection || null;
    if (current === this.connection) return;
    if (this.transport) this.transport.unbind_global(this.onFrame);
    this.connection = current;
    this.asked.clear();
    this.transport = (current && current.transport) || null;
    // A transport's global callbacks run before its 'message' listeners: the position is noted
    // before pusher-js hands the event to the app, whatever the app's callbacks do.
    if (this.transport) this.transport.bind_global(this.onFrame);
  }

  wants(channel) {
    return this.matches ? this.matches(channel) : this.book.knows(channel);
  }

  ask(channel) {
    if (!this.wants(channel)) return;
    const since = this.book.get(channel) ?? LATEST;
    this.asked.set(channel, since);
    this.pusher.send_event(RECOVER, { channel, since });
  }

  frame(eventName, message) {
    if (eventName !== 'message' || !message || typeof message.data !== 'string') return;
    const text = message.data;
    if (!text.includes('"position"') && !text.includes('"herald:')) return; // most frames: no parse
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return; // pusher-js reports unparsable frames itself
    }
    if (!frame || typeof frame.channel !== 'string' || !this.pusher.channel(frame.channel)) return;
    if (frame.event === RECOVERED) this.recovered(frame.channel, dataOf(frame));
    else if (frame.event === RECOVERY_FAILED) this.failed(frame.channel, dataOf(frame));
    else if (isPosition(frame.position)) this.seen(frame.channel, frame.position);
  }

  seen(channel, position) {
    if (this.matches && !this.matches(channel)) return;
    this.book.advance(channel, position);
  }

  recovered(channel, data) {
    const since = this.answered(channel, data);
    const position = isPosition(data.position) ? data.position : null;
    if (position !== null) this.seen(channel, position);
    call(this.onRecovered, channel, { since, replayed: Number(data.replayed) || 0, position });
  }

  failed(channel, data) {
    const since = this.answered(channel, data);
    // Lost only if nothing newer arrived meanwhile (a later live event is a valid anchor).
    if (isPosition(since) && this.book.get(channel) === since) this.book.lose(channel);
    call(this.onRecoveryFailed, channel, { since, reason: String(data.reason ?? '') });
    // Re-anchor at once, so the next reconnection can recover even if no event comes first.
    // Never after a failed "latest": that would ask again and again.
    if (since !== LATEST && this.book.get(channel) === null && this.pusher.connection.state === 'connected') {
      this.ask(channel);
    }
  }

  // The `since` this connection asked for (herald answers "latest" with the newest position).
  answered(channel, data) {
    const since = this.asked.has(channel) ? this.asked.get(channel) : (data.since ?? null);
    this.asked.delete(channel);
    return since;
  }
}

// Whether pusher-js's `subscribe(name)`, called while connected, will send `pusher:subscribe`.
function willSubscribe(pusher, name) {
  const channel = pusher.channel(name);
  return !channel || (!channel.subscribed && !channel.subscriptionPending);
}

function dataOf(frame) {
  if (typeof frame.data !== 'string') return frame.data && typeof frame.data === 'object' ? frame.data : {};
  try {
    const data = JSON.parse(frame.data);
    return data && typeof data === 'object' ? data : {};
  } catch {
    return {};
  }
}

function checkPusher(pusher) {
  const ok =
    pusher &&
    typeof pusher.subscribe === 'function' &&
    typeof pusher.subscribeAll === 'function' &&
    typeof pusher.send_event === 'function' &&
    pusher.connection &&
    typeof pusher.connection.bind === 'function';
  if (!ok) {
    throw new TypeError(
      'herald-pusher-recovery: withRecovery needs a pusher-js instance (laravel-echo: echo.connector.pusher)',
    );
  }
  if (pusher[WRAPPED]) {
    throw new Error('herald-pusher-recovery: this pusher-js instance is wrapped already; detach() the first one');
  }
}

function checkOptions(options) {
  if (!options || typeof options !== 'object') throw new TypeError('herald-pusher-recovery: options must be an object');
  for (const name of ['onRecovered', 'onRecoveryFailed']) {
    if (options[name] !== undefined && typeof options[name] !== 'function') {
      throw new TypeError(`herald-pusher-recovery: ${name} must be a function`);
    }
  }
  const { storage } = options;
  if (storage !== undefined && !(storage && typeof storage.get === 'function' && typeof storage.set === 'function')) {
    throw new TypeError('herald-pusher-recovery: storage must have get(channel) and set(channel, position)');
  }
}
