// Debian's Chromium, headless, driven by playwright-core: the browser every browser suite
// uses. The flags keep it from reaching any network beyond the pages the tests serve on
// 127.0.0.1 (../shared ECOSYSTEM notes: background networking is refused on this machine).

import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** Launches headless Chromium; fails clearly when it is not installed. */
export async function launchChromium() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} missing: apt-get install chromium`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
