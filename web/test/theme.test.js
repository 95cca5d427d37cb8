// Every foreground colour of both themes reaches WCAG AA (4.5:1) against its background, as
// `ls --color` and friends use them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DARK, FOREGROUNDS, LIGHT, contrast } from '../page/theme.js';

test('the contrast formula agrees with known pairs', () => {
  assert.equal(contrast('#000000', '#ffffff'), 21);
  assert.equal(contrast('#777777', '#777777'), 1);
  assert.ok(Math.abs(contrast('#767676', '#ffffff') - 4.54) < 0.01);
});

for (const [name, theme] of [['dark', DARK], ['light', LIGHT]]) {
  test(`${name} theme: every foreground colour is at least 4.5:1 on the background`, () => {
    for (const key of FOREGROUNDS) {
      assert.ok(theme[key], `${name} theme sets ${key} (else xterm's default applies)`);
      const ratio = contrast(theme[key], theme.background);
      assert.ok(ratio >= 4.5, `${name} ${key} ${theme[key]} is ${ratio.toFixed(2)}:1`);
    }
  });
}
