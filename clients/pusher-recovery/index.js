// herald-pusher-recovery: recover the events a pusher-js client missed while it reconnected,
// from herald's channel history. See README.md.

export { withRecovery } from './lib/recovery.js';
export { webStorage } from './lib/book.js';
export { comparePositions, isPosition } from './lib/positions.js';
