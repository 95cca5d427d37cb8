// Headless Chromium (Debian's package, never a downloaded build) driven by playwright-core.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
];

function chromiumPath() {
  try {
    return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('no `chromium` on PATH: run scripts/install-test-deps');
  }
}

/** A fresh browser profile; close() removes it. */
export async function launch() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'podterm-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath(),
    args: ARGS,
    headless: true,
    viewport: { width: 1100, height: 700 },
  });
  return {
    context,
    async close() {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * The visible text of the active terminal, one string per row (xterm's DOM renderer).
 * @param {import('playwright-core').Page} page
 */
export async function screenLines(page) {
  const text = await page.locator('.pane:not([hidden]) .xterm-rows').innerText();
  return text.replaceAll('\u00a0', ' ').split('\n').map((l) => l.trimEnd());
}

/**
 * Waits until a row of the active terminal matches `re`; returns that row's match. The row is
 * taken from the very read that satisfied the wait (a second read could find the screen
 * already changed, e.g. cleared by the next command).
 * @param {import('playwright-core').Page} page
 * @param {RegExp} re
 */
export async function waitForLine(page, re, timeout = 15_000) {
  let handle;
  try {
    handle = await page.waitForFunction(
      ([source, flags]) => {
        const rows = document.querySelector('.pane:not([hidden]) .xterm-rows');
        const lines = (rows?.innerText ?? '').replaceAll('\u00a0', ' ').split('\n');
        const re = new RegExp(source, flags);
        const line = lines.map((l) => l.trimEnd()).find((l) => re.test(l));
        return line === undefined ? false : { line }; // an object: an empty row is an answer too
      },
      [re.source, re.flags],
      { timeout },
    );
  } catch (e) {
    throw new Error(`no terminal row matches ${re}; the screen:\n${(await screenLines(page)).join('\n')}`, { cause: e });
  }
  const { line } = await handle.jsonValue();
  await handle.dispose();
  return /** @type {RegExpMatchArray} */ (line.match(re));
}
