import { type Browser, chromium } from 'playwright-core';

/** Headless Chromium (Debian's `chromium`, through playwright-core) as every browser test starts it. */
export function launchChromium(executablePath: string | undefined): Promise<Browser> {
  return chromium.launch({
    executablePath,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
    ],
    timeout: 15_000,
  });
}
