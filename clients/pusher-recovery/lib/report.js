// Errors thrown by the app's callbacks or storage must not break pusher-js's message handling
// (the plugin runs inside pusher-js's dispatch), so they are reported asynchronously instead.

export function report(error) {
  if (typeof globalThis.reportError === 'function') {
    globalThis.reportError(error); // browsers: the window's error event and the console
  } else {
    setTimeout(() => {
      throw error; // Node: an uncaught exception, as a throwing pusher-js callback would be
    }, 0);
  }
}

/** Calls `fn(...args)` when it is a function; a throw is reported, not propagated. */
export function call(fn, ...args) {
  if (typeof fn !== 'function') return;
  try {
    fn(...args);
  } catch (error) {
    report(error);
  }
}
