// Types for herald-pusher-recovery. See README.md.

/** What the plugin needs of a pusher-js instance (pusher-js 7+, or laravel-echo's `echo.connector.pusher`). */
export interface PusherLike {
  subscribe(channelName: string): unknown;
  subscribeAll(): void;
  unsubscribe(channelName: string): void;
  send_event(eventName: string, data: unknown, channel?: string): boolean;
  channel(channelName: string): unknown;
  allChannels(): unknown[];
  connection: { state: string; bind(event: string, callback: Function): unknown };
}

/** Keeps positions across page loads. Synchronous. `set(channel, null)` forgets the channel. */
export interface PositionStorage {
  get(channel: string): string | null | undefined;
  set(channel: string, position: string | null): void;
}

export interface Recovered {
  /** What was asked: the position recovered from, or "latest" for an anchor. */
  since: string;
  /** How many missed events herald replayed (they went to the channel's bind callbacks first). */
  replayed: number;
  /** The channel's newest position when herald answered (null if it has none). */
  position: string | null;
}

export interface RecoveryFailed {
  /** What was asked: a position, or "latest". */
  since: string | null;
  /** herald's explanation, e.g. that the events are no longer kept. */
  reason: string;
}

export interface RecoveryOptions {
  /** Patterns (`*` = any run of characters) of the history channels to anchor from their first subscription. */
  channels?: string | string[];
  onRecovered?: (channel: string, info: Recovered) => void;
  /** The missed events cannot all be replayed: reload the channel's state. */
  onRecoveryFailed?: (channel: string, info: RecoveryFailed) => void;
  storage?: PositionStorage;
}

export interface Recovery {
  /** Undoes the wrapping: the instance behaves as stock pusher-js again. */
  detach(): void;
  /** The newest position seen on the channel, or null. */
  position(channel: string): string | null;
}

export function withRecovery(pusher: PusherLike, options?: RecoveryOptions): Recovery;

/** A PositionStorage over the Web Storage API (default: sessionStorage). */
export function webStorage(store?: Storage, prefix?: string): PositionStorage;

/** Orders two positions ("<a>-<b>", pairs of unbounded integers): <0, 0 or >0. */
export function comparePositions(a: string, b: string): number;

export function isPosition(value: unknown): value is string;
