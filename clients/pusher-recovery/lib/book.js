// The newest position seen on each channel: in memory, and in the app's `storage` when it gives
// one (so a reloaded page can recover what it missed while it was gone).

import { comparePositions, isPosition } from './positions.js';
import { report } from './report.js';

export class PositionBook {
  /** `storage`: optional `{get(channel), set(channel, position | null)}`, synchronous. */
  constructor(storage) {
    this.storage = storage;
    // channel → position, or null for a channel known to keep history whose position is lost.
    this.entries = new Map();
  }

  /** The channel's position, or null (unknown, or lost after a failed recovery). */
  get(channel) {
    if (this.entries.has(channel)) return this.entries.get(channel);
    const stored = this.read(channel);
    if (stored !== null) this.entries.set(channel, stored);
    return stored;
  }

  /** True when the channel has had a position in this book (even if it was lost since). */
  knows(channel) {
    return this.get(channel) !== null || this.entries.has(channel);
  }

  /** Remembers `position` when it is after the one known. True when it was. */
  advance(channel, position) {
    const current = this.get(channel);
    if (current !== null && comparePositions(position, current) <= 0) return false;
    this.entries.set(channel, position);
    this.write(channel, position);
    return true;
  }

  /** Drops the position but keeps the channel known: it will be anchored afresh. */
  lose(channel) {
    this.entries.set(channel, null);
    this.write(channel, null);
  }

  /** Forgets the channel entirely (the app unsubscribed from it). */
  remove(channel) {
    this.entries.delete(channel);
    this.write(channel, null);
  }

  read(channel) {
    if (!this.storage) return null;
    try {
      const value = this.storage.get(channel);
      return isPosition(value) ? value : null;
    } catch (error) {
      report(error);
      return null;
    }
  }

  write(channel, position) {
    if (!this.storage) return;
    try {
      this.storage.set(channel, position);
    } catch (error) {
      report(error); // a full or refused storage costs persistence, not recovery in this page
    }
  }
}

/**
 * A `storage` for the Web Storage API: `webStorage(sessionStorage)` keeps positions for the
 * tab's lifetime (reloads included), `webStorage(localStorage)` across tabs and restarts.
 */
export function webStorage(store = globalThis.sessionStorage, prefix = 'herald-recovery:') {
  if (!store || typeof store.getItem !== 'function') {
    throw new TypeError('herald-pusher-recovery: webStorage needs a Storage (sessionStorage or localStorage)');
  }
  return {
    get: (channel) => store.getItem(prefix + channel),
    set: (channel, position) => {
      if (position === null) store.removeItem(prefix + channel);
      else store.setItem(prefix + channel, position);
    },
  };
}
