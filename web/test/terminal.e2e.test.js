// End to end in headless Chromium against `podterm dev`: pick a pod, type, resize, exit,
// restart, deep links; a screenshot of a working terminal goes to test-artifacts/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { launch, screenLines, waitForLine } from '../test-support/browser.js';
import { ROOT, startDev } from '../test-support/podterm.js';
import { subPathProxy } from '../test-support/subpath-proxy.js';

let dev;
let browser;

before(async () => {
  dev = await startDev();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await dev?.stop();
});

/** @param {import('playwright-core').Page} page */
const status = (page) => page.locator('#status');
const activePane = (page) => page.locator('.pane:not([hidden])');

/**
 * A route's answer as the API server refuses a user (a 403 `Status` saying `message`).
 * @param {string} message
 */
const forbidden = (message) => ({
  status: 403,
  contentType: 'application/json',
  body: JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message, reason: 'Forbidden', code: 403 }),
});

/** Waits until the active terminal has keyboard focus. */
async function terminalFocused(page) {
  await page.waitForFunction(() =>
    document.activeElement?.classList.contains('xterm-helper-textarea') &&
    !document.activeElement.closest('.pane').hidden,
  );
}

test('pick default/web-0 container app, type, resize, exit 3, start again', async () => {
  const page = await browser.context.newPage();
  await page.goto(dev.url);
  await page.locator('#cluster option[value="dev"]').waitFor({ state: 'attached' });
  await page.locator('#namespace').fill('default');
  await page.locator('#namespace').dispatchEvent('change');
  await page.locator('#pod option[value="web-0"]').waitFor({ state: 'attached' });
  assert.match(await page.locator('#pod option[value="web-0"]').innerText(), /web-0 — \w+/, 'pods show their phase');
  await page.locator('#pod').selectOption('web-0');
  // web-0 has more than one container, so the container picker shows.
  await page.locator('#container-field').waitFor({ state: 'visible' });
  await page.locator('#container').selectOption('app');
  await page.locator('#open').click();

  // Type right after the click, before the socket is open: the first keystrokes must not be
  // lost (the tab and its focused terminal appear within the click; the input waits for the
  // socket).
  await page.keyboard.type('echo hello-$RANDOM\n');
  const [hello] = await waitForLine(page, /^hello-\d+$/);
  assert.equal(await status(page).innerText(), 'connected');
  assert.equal(await page.locator('.tab[aria-selected="true"] .tab-label').innerText(), 'default/web-0/app');
  assert.equal(new URL(page.url()).hash, '#/dev/default/web-0/app');

  fs.mkdirSync(path.join(ROOT, 'test-artifacts'), { recursive: true });
  await page.screenshot({ path: path.join(ROOT, 'test-artifacts/web-terminal.png') });

  // Copy on selection (a double-click selects a word), paste with the platform's keys.
  await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], {
    origin: new URL(dev.url).origin,
  });
  const row = page.locator('.pane:not([hidden]) .xterm-rows > div', { hasText: new RegExp(`^${hello}\\s*$`) });
  const box = await row.boundingBox();
  await page.mouse.dblclick(box.x + 12, box.y + box.height / 2);
  await page.locator('#status', { hasText: 'copied' }).waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), hello);
  await page.keyboard.type('echo pasted-');
  await page.keyboard.press('Control+Shift+V');
  await page.keyboard.press('Enter');
  await waitForLine(page, new RegExp(`^pasted-${hello}$`));

  // A UTF-8 character cut between two output frames arrives whole.
  await page.keyboard.type(`printf 'utf8-\\342\\202'; sleep 0.2; printf '\\254\\n'\n`);
  await waitForLine(page, /^utf8-€$/);

  // The shell's size follows the window. The terminal fits itself to its pane a moment after
  // the window changes, so ask again until the size it shows has settled; the resize frame
  // goes out on the same socket before the next keystroke, so then `stty size` must agree.
  const seen = [];
  for (const viewport of [{ width: 1100, height: 700 }, { width: 700, height: 420 }, { width: 1300, height: 800 }]) {
    await page.setViewportSize(viewport);
    if (seen.length > 0) {
      // Wait for the fit to the new pane (it happens in the page's next rendering step).
      await page.waitForFunction(
        ([rows, cols]) => {
          const p = document.querySelector('.pane:not([hidden])');
          return p.dataset.rows !== String(rows) && p.dataset.cols !== String(cols);
        },
        seen.at(-1),
      );
    }
    let agreed = null;
    for (let attempt = 0; attempt < 5 && !agreed; attempt += 1) {
      const pane = activePane(page);
      const size = `${await pane.getAttribute('data-rows')} ${await pane.getAttribute('data-cols')}`;
      // A marker never used before: the answer to an earlier window's question is still on the
      // screen until `clear` runs, and must not be taken for this one's.
      const marker = `size-${seen.length}-${attempt}`;
      await page.keyboard.type(`clear; stty size | sed 's/^/${marker}: /'\n`);
      const [, stty] = await waitForLine(page, new RegExp(`^${marker}: (\\d+ \\d+)$`));
      if (stty === size) agreed = size;
    }
    assert.ok(agreed, `stty size never matched the terminal at ${viewport.width}x${viewport.height}`);
    seen.push(agreed.split(' ').map(Number));
  }
  // ...and the sizes are those of the windows: fewer cells in the small one, more in the big one.
  assert.ok(seen[1][0] < seen[0][0] && seen[1][1] < seen[0][1], JSON.stringify(seen));
  assert.ok(seen[2][0] > seen[0][0] && seen[2][1] > seen[0][1], JSON.stringify(seen));

  await page.keyboard.type('exit 3\n');
  await page.locator('#status', { hasText: 'exited with code 3' }).waitFor();
  assert.equal(await page.locator('#status').getAttribute('data-tone'), 'bad', 'a failed exit is not green');
  await page.locator('#restart').waitFor({ state: 'visible' });

  // Enter starts a new session in the same tab.
  await page.keyboard.press('Enter');
  await page.locator('#status', { hasText: /^connected$/ }).waitFor();
  await page.keyboard.type('echo again-$((40+2))\n');
  await waitForLine(page, /^again-42$/);
  assert.equal(await page.locator('.tab').count(), 1);
  await page.close();
});

test('a deep link opens straight into default/tools, and a second one into a new tab', async () => {
  const page = await browser.context.newPage();
  await page.goto(`${dev.url}#/dev/default/tools`);
  await page.locator('#status', { hasText: /^connected$/ }).waitFor();
  await terminalFocused(page);
  assert.equal(await page.locator('.tab-label').innerText(), 'default/tools');
  // The pickers show where the link led, ready for another tab.
  await page.locator('#namespaces option[value="default"]').waitFor({ state: 'attached' });
  assert.equal(await page.locator('#namespace').inputValue(), 'default');
  assert.equal(await page.locator('#pod').inputValue(), 'tools');
  await page.keyboard.type('echo deep-$((6*7))\n');
  await waitForLine(page, /^deep-42$/);

  // The theme follows the system's light or dark setting, live.
  const background = () =>
    page.evaluate(() => getComputedStyle(document.querySelector('.pane:not([hidden]) .xterm-scrollable-element')).backgroundColor);
  await page.emulateMedia({ colorScheme: 'light' });
  const light = await background();
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.waitForFunction(
    ([before]) => getComputedStyle(document.querySelector('.pane:not([hidden]) .xterm-scrollable-element')).backgroundColor !== before,
    [light],
  );
  assert.equal(await background(), 'rgb(30, 31, 34)');
  await page.screenshot({ path: path.join(ROOT, 'test-artifacts/web-terminal-dark.png') });
  await page.emulateMedia({ colorScheme: 'light' });
  await page.waitForFunction(
    ([want]) => getComputedStyle(document.querySelector('.pane:not([hidden]) .xterm-scrollable-element')).backgroundColor === want,
    [light],
  );

  // Changing the link opens another tab; the first keeps its session.
  await page.evaluate(() => {
    location.hash = '#/dev/default/web-0/app';
  });
  await page.locator('.tab').nth(1).waitFor();
  await page.locator('#status', { hasText: /^connected$/ }).waitFor();
  await page.keyboard.type('echo second-tab\n');
  await waitForLine(page, /^second-tab$/);
  await page.locator('.tab-label', { hasText: 'default/tools' }).click();
  await waitForLine(page, /^deep-42$/);
  assert.equal(new URL(page.url()).hash, '#/dev/default/tools');
  await page.close();
});

test('on a deep link, keys typed before the page is ready all reach the shell, in order', async () => {
  const page = await browser.context.newPage();
  // Hold the page's script, then the whoami answer, so that typing happens before each is in.
  const held = (pattern) => {
    let release;
    const released = new Promise((r) => {
      release = r;
    });
    let requested;
    const asked = new Promise((r) => {
      requested = r;
    });
    return {
      pattern,
      asked,
      release,
      handler: async (route) => {
        requested();
        await released;
        await route.continue();
      },
    };
  };
  const script = held(/\/assets\/app\.js$/);
  const who = held(/\/api\/whoami\?/);
  await page.route(script.pattern, script.handler);
  await page.route(who.pattern, who.handler);
  try {
    await page.goto(`${dev.url}#/dev/default/tools`, { waitUntil: 'commit' });
    await script.asked;
    // Keys the browser takes before any of the page's script has run.
    await page.waitForFunction(() => document.activeElement?.id === 'early-keys');
    await page.keyboard.type('echo early-');
    script.release();
    // The page's script runs; whoami has not answered, so the shell has not started.
    await who.asked;
    await page.keyboard.type('$((6*7))-x');
    await page.keyboard.press('Backspace');
    await page.keyboard.press('Backspace');
    await page.keyboard.type('\n');
    assert.equal(await page.locator('.tab').count(), 1, 'the tab shows at once');
    who.release();
    await page.locator('#status', { hasText: /^connected$/ }).waitFor();
    await waitForLine(page, /^early-42$/);
    await terminalFocused(page);
  } finally {
    script.release();
    who.release();
    await page.close();
  }
});

test('where listing pods is forbidden, the pod can be typed', async () => {
  const page = await browser.context.newPage();
  // The pod list answers what the API server answers a user without `list pods` (getting one
  // pod, and exec, stay allowed).
  await page.route(/\/api\/v1\/namespaces\/default\/pods$/, (route) =>
    route.fulfill(
      forbidden('pods is forbidden: User "dev" cannot list resource "pods" in API group "" in the namespace "default"'),
    ),
  );
  try {
    await page.goto(dev.url);
    await page.locator('#cluster option[value="dev"]').waitFor({ state: 'attached' });
    await page.locator('#namespace').fill('default');
    await page.locator('#namespace').dispatchEvent('change');
    await page.locator('#pod-name').waitFor({ state: 'visible' });
    assert.ok(await page.locator('#pod').isHidden(), 'no empty pod list to pick from');
    assert.match(await page.locator('#notice').innerText(), /Cannot list pods in default \(pods is forbidden: .*\); type the pod's name\./);
    await page.locator('#pod-name').fill('web-0');
    await page.locator('#pod-name').dispatchEvent('change');
    // The pod itself can be read, so its containers can still be picked.
    await page.locator('#container-field').waitFor({ state: 'visible' });
    await page.locator('#container').selectOption('app');
    await page.locator('#open').click();
    await page.keyboard.type('echo typed-$((3*3))\n');
    await waitForLine(page, /^typed-9$/);
    assert.equal(await page.locator('.tab-label').innerText(), 'default/web-0/app');
    assert.equal(new URL(page.url()).hash, '#/dev/default/web-0/app');

    // A deep link into that namespace shows its pod in the typed field.
    await page.goto(`${dev.url}#/dev/default/tools`);
    await page.locator('#status', { hasText: /^connected$/ }).waitFor();
    await page.locator('#pod-name').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#pod-name').inputValue(), 'tools');
  } finally {
    await page.close();
  }
});

test('a namespace typed while the namespace list is refused stays as typed', async () => {
  const page = await browser.context.newPage();
  // A user who may not list namespaces, and the answer saying so comes only after they typed.
  let release;
  const typed = new Promise((ok) => {
    release = ok;
  });
  await page.route(/\/api\/v1\/namespaces$/, async (route) => {
    await typed;
    await route.fulfill(
      forbidden('namespaces is forbidden: User "dev" cannot list resource "namespaces" in API group "" at the cluster scope'),
    );
  });
  try {
    const refused = page.waitForResponse(/\/api\/v1\/namespaces$/);
    await page.goto(dev.url);
    await page.locator('#cluster option[value="dev"]').waitFor({ state: 'attached' });
    await page.locator('#namespace').fill('team-a');
    await page.locator('#namespace').dispatchEvent('change');
    await page.locator('#pod option[value="api-0"]').waitFor({ state: 'attached' });
    release();
    await (await refused).finished();
    // The page's handling of the refusal runs before its next two frames.
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    assert.equal(await page.locator('#namespace').inputValue(), 'team-a');
    assert.match(await page.locator('#notice').innerText(), /Cannot list namespaces \(namespaces is forbidden: .*\); type the namespace's name\./);
    assert.deepEqual(await page.locator('#pod option').allInnerTexts(), ['api-0 — Running']);
  } finally {
    await page.close();
  }
});

test('links in the output open in a new browser tab', async () => {
  const page = await browser.context.newPage();
  await page.goto(`${dev.url}#/dev/default/tools`);
  await page.locator('#status', { hasText: /^connected$/ }).waitFor();
  await terminalFocused(page);
  await page.keyboard.type(`echo link: ${dev.url}healthz\n`);
  await waitForLine(page, /^link: http:\S+healthz$/);
  const row = page.locator('.pane:not([hidden]) .xterm-rows > div', { hasText: /^link: http/ });
  const box = await row.boundingBox();
  // Over the URL (after "link: "), hover first: the link provider underlines on hover.
  await page.mouse.move(box.x + 120, box.y + box.height / 2);
  const popup = browser.context.waitForEvent('page');
  await page.mouse.click(box.x + 120, box.y + box.height / 2);
  const opened = await popup;
  await opened.waitForLoadState();
  assert.equal(opened.url(), `${dev.url}healthz`);
  await opened.close();
  await page.close();
});

test('behind a gateway on a sub-path, the page and its sockets use relative URLs', async () => {
  const proxy = await subPathProxy(dev.url, '/tools/term/');
  const page = await browser.context.newPage();
  try {
    await page.goto(`${proxy.url}#/dev/default/tools`);
    await page.locator('#status', { hasText: /^connected$/ }).waitFor();
    await terminalFocused(page);
    await page.keyboard.type('echo via-$((2+3))\n');
    await waitForLine(page, /^via-5$/);
    assert.equal(await page.locator('#cluster').inputValue(), 'dev');
  } finally {
    await page.close();
    await proxy.close();
  }
});

test('search finds text in the scrollback', async () => {
  const page = await browser.context.newPage();
  await page.goto(`${dev.url}#/dev/default/tools`);
  await page.locator('#status', { hasText: /^connected$/ }).waitFor();
  await terminalFocused(page);
  await page.keyboard.type('for i in $(seq 1 300); do echo line-$i; done; echo needle-$((1+1))\n');
  await waitForLine(page, /^needle-2$/);
  // line-42 has scrolled out of view, into the scrollback.
  assert.ok(!(await screenLines(page)).includes('line-42'));
  await page.keyboard.press('Control+Shift+F');
  await page.locator('#search-input').waitFor({ state: 'visible' });
  await page.keyboard.type('line-42');
  await page.keyboard.press('Enter');
  // The match is selected and scrolled into view, and counted.
  await waitForLine(page, /^line-42$/);
  await page.locator('#search-count', { hasText: /^1 of 1$/ }).waitFor();
  // No match says so, visibly.
  await page.keyboard.type('-nowhere');
  await page.locator('#search-count', { hasText: 'no match' }).waitFor();
  assert.match(await page.locator('#search-input').getAttribute('class'), /not-found/);
  await page.keyboard.press('Escape');
  await terminalFocused(page);
  await page.close();
});

test('a dropped connection says so, and Enter tries again', async () => {
  // A draining gateway lets sessions go on for PODTERM_DRAIN_TIMEOUT, then closes them (1001).
  const own = await startDev({ PODTERM_DRAIN_TIMEOUT: '1s' });
  const page = await browser.context.newPage();
  try {
    await page.goto(`${own.url}#/dev/default/tools`);
    await page.locator('#status', { hasText: /^connected$/ }).waitFor();
    const stopped = own.stop();
    // The status line shows the gateway's close reason.
    await page.locator('#status', { hasText: /^the server is restarting$/ }).waitFor();
    assert.equal(await page.locator('#status').getAttribute('data-tone'), 'bad');
    await stopped;
    await waitForLine(page, /\[the server is restarting\] press Enter for a new session$/);
    await page.keyboard.press('Enter');
    await page.locator('#status', { hasText: /^refused: the gateway cannot be reached$/ }).waitFor();
  } finally {
    await page.close();
    await own.stop();
  }
});

test('on a slow API server the latest pick wins, and the first pod preselected has a shell', async () => {
  const page = await browser.context.newPage();
  // The default namespace's pod list takes a second; team-a's comes at once.
  await page.route('**/api/v1/namespaces/default/pods', async (r) => {
    await new Promise((ok) => setTimeout(ok, 1000));
    await r.continue();
  });
  const slowDone = page.waitForResponse('**/api/v1/namespaces/default/pods');
  await page.goto(dev.url);
  await page.locator('#cluster option[value="dev"]').waitFor({ state: 'attached' });
  // While default's list is on its way: nothing to open, and the picker says it is loading.
  await page.locator('#pod option', { hasText: 'loading…' }).waitFor({ state: 'attached' });
  assert.equal(await page.locator('#open').isDisabled(), true);
  await page.locator('#namespace').fill('team-a');
  await page.locator('#namespace').dispatchEvent('change');
  await page.locator('#pod option[value="api-0"]').waitFor({ state: 'attached' });
  await (await slowDone).finished();
  // The page's handling of the late answer runs before its next two frames.
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  assert.deepEqual(await page.locator('#pod option').allInnerTexts(), ['api-0 — Running']);
  assert.equal(await page.locator('#open').isDisabled(), false);


  // Back in default, once its list came: echo-0 sorts first but has no shell.
  await page.unroute('**/api/v1/namespaces/default/pods');
  await page.locator('#namespace').fill('default');
  await page.locator('#namespace').dispatchEvent('change');
  await page.locator('#pod option[value="echo-0"]').waitFor({ state: 'attached' });
  assert.notEqual(await page.locator('#pod').inputValue(), 'echo-0');
  assert.notEqual(await page.locator('#pod').inputValue(), 'flood-0');
  // The namespace list coming late does not undo what the user picked meanwhile (web-0, not
  // the preselected tools), and the click that takes the focus from the field opens it.
  await page.route('**/api/v1/namespaces', async (r) => {
    await new Promise((ok) => setTimeout(ok, 1000));
    await r.continue();
  });
  const namespacesDone = page.waitForResponse('**/api/v1/namespaces');
  await page.reload();
  await page.locator('#cluster option[value="dev"]').waitFor({ state: 'attached' });
  await page.locator('#namespace').fill('default');
  await page.locator('#namespace').dispatchEvent('change');
  await page.locator('#pod option[value="web-0"]').waitFor({ state: 'attached' });
  await page.locator('#pod').selectOption('web-0');
  await (await namespacesDone).finished();
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  assert.equal(await page.locator('#pod').inputValue(), 'web-0');
  await page.locator('#open').click();
  await page.locator('.tab-label', { hasText: 'default/web-0/app' }).waitFor();
  await page.unroute('**/api/v1/namespaces');
  await page.close();
});

test('leaving asks first while a session is live; a reload opens every tab again', async () => {
  const page = await browser.context.newPage();
  await page.goto(`${dev.url}#/dev/default/tools`);
  await page.locator('#status', { hasText: /^connected$/ }).waitFor();
  await page.keyboard.type('echo one-$((1+1))\n');
  await waitForLine(page, /^one-2$/);
  await page.evaluate(() => {
    location.hash = '#/dev/default/web-0/app';
  });
  await page.locator('.tab').nth(1).waitFor();
  await page.locator('#status', { hasText: /^connected$/ }).waitFor();
  await page.keyboard.type('echo two-$((2+1))\n');
  await waitForLine(page, /^two-3$/);

  const asked = [];
  page.on('dialog', async (d) => {
    asked.push(d.type());
    await d.accept();
  });
  await page.reload();
  assert.deepEqual(asked, ['beforeunload'], 'the page asked before leaving live sessions');
  await page.locator('.tab').nth(1).waitFor();
  assert.deepEqual(await page.locator('.tab-label').allInnerTexts(), ['default/tools', 'default/web-0/app']);
  assert.equal(await page.locator('.tab[aria-selected="true"] .tab-label').innerText(), 'default/web-0/app');
  await page.locator('#status', { hasText: /^connected$/ }).waitFor();
  // Both are live again: the other tab too.
  await page.locator('.tab-label', { hasText: 'default/tools' }).click();
  await page.locator('#status', { hasText: /^connected$/ }).waitFor();

  // With every session ended, leaving asks nothing.
  for (const label of ['default/tools', 'default/web-0/app']) {
    await page.locator('.tab-label', { hasText: label }).click();
    await page.keyboard.type('exit\n');
    await page.locator('#status', { hasText: 'exited with code 0' }).waitFor();
  }
  await page.reload();
  assert.deepEqual(asked, ['beforeunload']);
  await page.close();
});

test('details: numbered twin tabs, a namespace field that fits, the last row above the status line', async () => {
  const page = await browser.context.newPage();
  await page.goto(`${dev.url}#/dev/default/tools`);
  await page.locator('#status', { hasText: /^connected$/ }).waitFor();
  await page.locator('#pod option[value="tools"]').waitFor({ state: 'attached' });
  await page.locator('#open').click();
  await page.locator('.tab').nth(1).waitFor();
  assert.deepEqual(await page.locator('.tab-label').allInnerTexts(), ['default/tools', 'default/tools (2)']);
  // On a phone-sized window the labels stay on one line each (the tab bar scrolls instead).
  await page.setViewportSize({ width: 360, height: 700 });
  for (const label of await page.locator('.tab-label').all()) {
    const one = await label.evaluate((el) => {
      const line = Number.parseFloat(getComputedStyle(el).lineHeight) || 20;
      return el.getBoundingClientRect().height < 2 * line;
    });
    assert.ok(one, 'a tab label wrapped');
  }
  await page.setViewportSize({ width: 1100, height: 700 });

  await page.locator('#namespace').fill('kube-system');
  const fits = await page.locator('#namespace').evaluate((el) => el.scrollWidth <= el.clientWidth);
  assert.ok(fits, 'kube-system fits the namespace field');

  // Fill the screen, then the last row must end above the status line.
  await page.locator('.tab-label', { hasText: 'default/tools (2)' }).click();
  await page.locator('#status', { hasText: /^connected$/ }).waitFor();
  await page.keyboard.type('seq 1 200\n');
  await waitForLine(page, /^200$/);
  const rows = await page.locator('.pane:not([hidden]) .xterm-rows > div').last().boundingBox();
  const footer = await page.locator('footer').boundingBox();
  assert.ok(rows.y + rows.height <= footer.y + 0.5, `last row ends at ${rows.y + rows.height}, the status line starts at ${footer.y}`);
  await page.close();
});

test('touch screens get Esc, Tab, Ctrl, Alt and arrows; a documented key leaves the terminal', async () => {
  const page = await browser.context.newPage();
  const cdp = await browser.context.newCDPSession(page);
  await cdp.send('Emulation.setTouchEmulationEnabled', { enabled: true, maxTouchPoints: 5 });
  await page.goto(`${dev.url}#/dev/default/tools`);
  await page.locator('#status', { hasText: /^connected$/ }).waitFor();
  await page.locator('#keys').waitFor({ state: 'visible' });
  await page.keyboard.type('echo touch-$((4+4))');
  // Ctrl then a letter from the (soft) keyboard: Ctrl+A goes to the line's start.
  await page.locator('#keys [data-mod="ctrl"]').click();
  assert.equal(await page.locator('#keys [data-mod="ctrl"]').getAttribute('aria-pressed'), 'true');
  await page.keyboard.type('a');
  assert.equal(await page.locator('#keys [data-mod="ctrl"]').getAttribute('aria-pressed'), 'false');
  await page.keyboard.type('# ');
  await page.keyboard.press('Enter');
  await waitForLine(page, /[$#] # echo touch-\$\(\(4\+4\)\)$/);
  // The arrows reach the shell: Up brings back the commented line, to be edited.
  await page.locator('#keys [data-key="up"]').click();
  await page.keyboard.type('-again\n');
  await waitForLine(page, /[$#] # echo touch-\$\(\(4\+4\)\)-again$/);
  // Ctrl+Shift+M leaves the terminal: the focus goes to the tab, and Tab moves on in the page.
  await page.keyboard.press('Control+Shift+M');
  assert.equal(await page.evaluate(() => document.activeElement?.className), 'tab-label');
  await page.close();
});
