// End to end in headless Chromium: under a policy that gives restricted mode, the page is a
// command prompt; each line runs as its own exec without a tty, and a refusal names its rule.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launch, screenLines, waitForLine } from '../test-support/browser.js';
import { ROOT, startDev } from '../test-support/podterm.js';

const POLICY = `
rules:
  - name: support-readonly
    namespaces: [default]
    mode: restricted
    allow:
      - [echo, "*"]
      - [ls, "*"]
`;

let dev;
let browser;
let dir;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'podterm-policy-'));
  fs.writeFileSync(path.join(dir, 'policy.yaml'), POLICY);
  dev = await startDev({ PODTERM_POLICY_FILE: path.join(dir, 'policy.yaml') });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await dev?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('restricted mode: a prompt with argv splitting, stderr in red, exit codes, refusals', async () => {
  const page = await browser.context.newPage();
  await page.goto(`${dev.url}#/dev/default/tools`);
  await page.locator('.tab.restricted').waitFor();
  await waitForLine(page, /restricted mode \(policy rule support-readonly\)/);
  await waitForLine(page, /^allowed: echo \*, ls \*$/);
  await waitForLine(page, /^default\/tools\$$/);

  // Quotes keep spaces; nothing is expanded; the words reach echo as separate arguments.
  await page.keyboard.type(`echo "hello   restricted" 'a b' $HOME\n`);
  await waitForLine(page, /^hello {3}restricted a b \$HOME$/);
  await waitForLine(page, /^\[exited with code 0\]$/);

  // stderr is shown in red (palette colour 1), then the exit code.
  await page.keyboard.type('ls /nonexistent-podterm-dir\n');
  await waitForLine(page, /^\[exited with code 2\]$/);
  const red = page.locator('.xterm-rows span.xterm-fg-1', { hasText: 'nonexistent-podterm-dir' });
  assert.ok((await red.count()) > 0, 'the error message is red');

  // A command outside the allow list is refused, and the refusal names the rule.
  await page.keyboard.type('bash -c id\n');
  const [refusal] = await waitForLine(page, /^\[refused: .*\]$/);
  assert.match(refusal, /support-readonly/);
  assert.match(await page.locator('#status').innerText(), /refused: .*support-readonly/);
  assert.equal(await page.locator('#status').getAttribute('data-tone'), 'bad', 'a refusal is not green');

  // Lines typed while a command runs are kept and run after it, as a shell does.
  await page.keyboard.type('echo first-typed\necho second-typed\necho third-typed\n');
  await waitForLine(page, /^first-typed$/);
  await waitForLine(page, /^second-typed$/);
  await waitForLine(page, /^third-typed$/);
  await page.locator('#status', { hasText: 'exited with code 0' }).waitFor();
  assert.equal(await page.locator('#status').getAttribute('data-tone'), 'good');

  // History: Up brings back earlier lines; the line can be edited before it runs.
  await page.keyboard.press('ArrowUp');
  await page.keyboard.press('ArrowUp');
  await waitForLine(page, /^default\/tools\$ ls \/nonexistent-podterm-dir$/);
  await page.keyboard.press('Control+U');
  await page.keyboard.type('echo edited');
  await page.keyboard.press('Home');
  await page.keyboard.press('Control+F');
  await page.keyboard.press('Control+F');
  await page.keyboard.press('Control+F');
  await page.keyboard.press('Control+F');
  await page.keyboard.type(' -n');
  await page.keyboard.press('Enter');
  await waitForLine(page, /^default\/tools\$ echo -n edited$/);
  await waitForLine(page, /^edited⏎$/);
  assert.ok((await screenLines(page)).some((l) => l === '[exited with code 0]'));
  fs.mkdirSync(path.join(ROOT, 'test-artifacts'), { recursive: true });
  await page.screenshot({ path: path.join(ROOT, 'test-artifacts/web-restricted.png') });
  await page.close();
});

test('a line wider than the terminal wraps once, with wide characters and a resize', async () => {
  const page = await browser.context.newPage();
  await page.setViewportSize({ width: 700, height: 500 });
  await page.goto(`${dev.url}#/dev/default/tools`);
  await waitForLine(page, /^default\/tools\$$/);
  const cols = Number(await page.locator('.pane:not([hidden])').getAttribute('data-cols'));
  const word = 'x'.repeat(cols + 20);
  await page.keyboard.type(`echo ${word} 你好世界`);
  // One copy of the prompt, whatever was typed after it wrapped.
  const prompts = (await screenLines(page)).filter((l) => l.startsWith('default/tools$'));
  assert.deepEqual(prompts.length, 1, (await screenLines(page)).join('\n'));
  // A narrower window reflows the line; it is still there once, and runs whole.
  await page.setViewportSize({ width: 500, height: 500 });
  await page.waitForFunction((c) => Number(document.querySelector('.pane:not([hidden])').dataset.cols) < c, cols);
  await page.keyboard.press('End');
  const again = (await screenLines(page)).filter((l) => l.startsWith('default/tools$'));
  assert.deepEqual(again.length, 1, (await screenLines(page)).join('\n'));
  await page.keyboard.press('Enter');
  await page.locator('#status', { hasText: 'exited with code 0' }).waitFor();
  const text = (await screenLines(page)).join('');
  assert.ok(text.includes(`${word} 你好世界`), text);
  await page.close();
});

test('where no policy rule applies, the page says so and the refused exec gives the reason', async () => {
  const page = await browser.context.newPage();
  await page.goto(`${dev.url}#/dev/team-a/api-0`);
  await page.locator('#notice', { hasText: /no policy rule lets user/ }).waitFor();
  await page.locator('#status', { hasText: /^refused: no policy rule lets user .*team-a/ }).waitFor();
  await waitForLine(page, /^\[refused: no policy rule lets user .*\] press Enter for a new session$/);
  await page.close();
});
