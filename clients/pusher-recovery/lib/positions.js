// Positions (herald's "<a>-<b>" event positions) and the channel patterns of the `channels` option.
// Pure functions: no pusher-js, no I/O.

const POSITION = /^\d+-\d+$/;

/** True when `value` is a position: two runs of decimal digits joined by `-`. */
export function isPosition(value) {
  return typeof value === 'string' && POSITION.test(value);
}

/**
 * Orders two positions as pairs of unbounded integers: negative when `a` comes before `b`,
 * zero when equal, positive after. Compares digit strings (no Number, no BigInt), so neither
 * half is limited to 2^53.
 */
export function comparePositions(a, b) {
  const [a1, a2] = halves(a);
  const [b1, b2] = halves(b);
  return compareDigits(a1, b1) || compareDigits(a2, b2);
}

function halves(position) {
  const dash = position.indexOf('-');
  return [position.slice(0, dash).replace(/^0+/, ''), position.slice(dash + 1).replace(/^0+/, '')];
}

// Two digit strings without leading zeros: the longer is the greater, else the first difference.
function compareDigits(a, b) {
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  if (a === b) return 0;
  return a < b ? -1 : 1;
}

/**
 * A predicate for channel names from the `channels` option: a pattern or a list of patterns in
 * which `*` matches any run of characters (as in herald's `[[apps.history]] channels`).
 * `undefined` gives `null`: no patterns, the plugin then follows channels whose positions it saw.
 */
export function channelMatcher(patterns) {
  if (patterns === undefined || patterns === null) return null;
  const list = Array.isArray(patterns) ? patterns : [patterns];
  const regexps = list.map((pattern) => {
    if (typeof pattern !== 'string' || pattern === '') {
      throw new TypeError('herald-pusher-recovery: `channels` must be a non-empty string or a list of them');
    }
    const body = pattern.split('*').map(escapeRegExp).join('.*');
    return new RegExp(`^${body}$`, 's');
  });
  return (name) => regexps.some((re) => re.test(name));
}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
