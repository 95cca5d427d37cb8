// The e2e helpers themselves, on a page made to look like a terminal (no gateway needed).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, waitForLine } from '../test-support/browser.js';

let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

test('waitForLine returns the row it waited for, even when the screen changes right after', async () => {
  const page = await browser.context.newPage();
  try {
    await page.setContent(`<div class="pane"><div class="xterm-rows"><div>$ clear; stty size</div><div>size-0: 24 80</div></div></div>`);
    // The screen is cleared as soon as it has been read once, like a `clear` that runs just
    // after the wait saw its line: a second read would find nothing.
    await page.evaluate(() => {
      const rows = document.querySelector('.xterm-rows');
      const read = Object.getOwnPropertyDescriptor(HTMLElement.prototype, 'innerText').get;
      Object.defineProperty(rows, 'innerText', {
        get() {
          const text = read.call(this);
          this.replaceChildren();
          return text;
        },
      });
    });
    const m = await waitForLine(page, /^size-0: (\d+) (\d+)$/);
    assert.ok(m, 'waitForLine returned no match');
    assert.deepEqual([...m], ['size-0: 24 80', '24', '80']);
  } finally {
    await page.close();
  }
});

test('waitForLine matches an empty row too, and says what the screen shows when nothing matches', async () => {
  const page = await browser.context.newPage();
  try {
    await page.setContent(`<div class="pane"><div class="xterm-rows"><div>one\u00a0\u00a0</div><div>\u00a0\u00a0</div><div>three</div></div></div>`);
    assert.equal((await waitForLine(page, /^one$/))[0], 'one');
    assert.equal((await waitForLine(page, /^$/))[0], '');
    await assert.rejects(waitForLine(page, /^two$/, 500), /no terminal row matches \/\^two\$\/; the screen:\none\n\nthree$/);
  } finally {
    await page.close();
  }
});
