import { type Browser, chromium } from 'playwright-core';
import { findChromium } from './components';

/** Debian's Chromium, headless, as every page test runs it (skip such tests with `requireComponent`). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: findChromium(),
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
