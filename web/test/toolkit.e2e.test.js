// End to end in headless Chromium, beside the shell: the Logs view following a log across
// rotations, files down and up (the button and a drop onto the terminal), a hostile container's
// archive refused, and a debug container for a distroless pod, attached in a tab.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launch, waitForLine } from '../test-support/browser.js';
import { startDev } from '../test-support/podterm.js';

const MANIFEST = `
namespaces: [default]
pods:
  - namespace: default
    name: tools
    containers:
      - name: shell
  - namespace: default
    name: rotating-0
    containers:
      - name: app
        logs: {every: 40ms, rotate: 25}
  - namespace: default
    name: distroless-0
    containers:
      - name: app
        distroless: true
        logs: {every: 1s}
  - namespace: default
    name: hostile-0
    containers:
      - name: app
        builtin: hostile-tar
`;

let dev;
let browser;
let dir;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'podterm-toolkit-'));
  fs.writeFileSync(path.join(dir, 'manifest.yaml'), MANIFEST);
  fs.mkdirSync(path.join(dir, 'files'));
  dev = await startDev({ PODTERM_DEV_CLUSTER_MANIFEST: path.join(dir, 'manifest.yaml') });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await dev?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Opens the page on `pod` (its terminal too, for a pod with a shell). */
async function pageOn(pod) {
  const page = await browser.context.newPage();
  await page.goto(`${dev.url}#/dev/default/${pod}`);
  await page.locator('#pod').waitFor();
  await page.waitForFunction((p) => document.querySelector('#pod')?.value === p, pod);
  return page;
}

test('the Logs view follows a log across rotations and says it reopened', async () => {
  const page = await pageOn('rotating-0');
  await page.locator('#logs-toggle').click();
  const logs = page.locator('#logs');
  await logs.locator('.log-line', { hasText: /^line \d+ of app$/ }).first().waitFor();
  // 25 lines per file at 40 ms: a rotation each second; wait for two reopens.
  await logs.locator('.log-note', { hasText: 'reopened' }).nth(1).waitFor({ timeout: 15_000 });
  const lines = await logs.locator('.log-line:not(.log-note)').allInnerTexts();
  const numbers = lines.map((l) => Number(l.match(/^line (\d+) of app$/)?.[1]));
  assert.ok(numbers.every((n) => Number.isInteger(n)), lines.join('\n'));
  for (let i = 1; i < numbers.length; i += 1) {
    assert.equal(numbers[i], numbers[i - 1] + 1, `no gap and no repeat across reopens: ${numbers.join(',')}`);
  }
  // Search narrows the lines; timestamps show on demand.
  await logs.locator('[name="search"]').fill('line 3');
  await page.waitForFunction(() => [...document.querySelectorAll('#logs .log-line:not(.log-note)')].every((e) => e.textContent.includes('line 3')));
  await logs.locator('[name="timestamps"]').check();
  assert.match(await logs.locator('.log-line:not(.log-note)').first().innerText(), /^\d{4}-\d\d-\d\dT\S+Z line 3/);
  // A download of what the view holds.
  const [download] = await Promise.all([page.waitForEvent('download'), logs.locator('[name="download"]').click()]);
  assert.equal(download.suggestedFilename(), 'rotating-0-app.log');
  await page.close();
});

test('files: download, upload by button and by drop, refusals in plain words', async () => {
  const files = path.join(dir, 'files');
  fs.writeFileSync(path.join(files, 'report.txt'), 'the report\n');
  const page = await pageOn('tools');
  await waitForLine(page, /[$#] ?$/);
  await page.locator('#files-toggle').click();
  const dialog = page.locator('#files-dialog');
  await dialog.locator('[name="path"]').fill(path.join(files, 'report.txt'));
  const [download] = await Promise.all([page.waitForEvent('download'), dialog.locator('[name="download"]').click()]);
  assert.equal(download.suggestedFilename(), 'report.txt');
  assert.equal(fs.readFileSync(await download.path(), 'utf8'), 'the report\n');

  // Upload through the file field, into a directory.
  await dialog.locator('[name="dir"]').fill(files);
  await dialog.locator('[name="files"]').setInputFiles({ name: 'up.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(300_000, 7) });
  await dialog.locator('[name="upload"]').click();
  await dialog.locator('.transfer[data-state="done"]', { hasText: 'up.bin' }).waitFor();
  assert.deepEqual(fs.readFileSync(path.join(files, 'up.bin')), Buffer.alloc(300_000, 7));

  // A missing file: the gateway's words.
  await dialog.locator('[name="path"]').fill(path.join(files, 'nope'));
  await dialog.locator('[name="download"]').click();
  await dialog.locator('.transfer[data-state="failed"]', { hasText: 'No such file' }).waitFor();
  await dialog.locator('[name="close"]').click();

  // Dropped onto the terminal: uploaded into the directory the dialog names.
  const drop = await page.evaluateHandle(() => {
    const dt = new DataTransfer();
    dt.items.add(new File(['dropped\n'], 'dropped.txt'));
    return dt;
  });
  await page.locator('.pane:not([hidden])').dispatchEvent('drop', { dataTransfer: drop });
  await dialog.locator('.transfer[data-state="done"]', { hasText: 'dropped.txt' }).waitFor();
  assert.equal(fs.readFileSync(path.join(files, 'dropped.txt'), 'utf8'), 'dropped\n');
  await page.close();
});

test('a hostile container cannot make the page save what it sent', async () => {
  const page = await pageOn('hostile-0');
  await page.locator('#files-toggle').click();
  const dialog = page.locator('#files-dialog');
  const attacks = ['dotdot', 'symlink', 'absolute'];
  for (const [i, attack] of attacks.entries()) {
    await dialog.locator('[name="path"]').fill(`/srv/${attack}`);
    await dialog.locator('[name="download"]').click();
    await dialog.locator('.transfer[data-state="failed"]', { hasText: 'refuses' }).nth(i).waitFor();
  }
  assert.equal(await dialog.locator('.transfer[data-state="done"]').count(), 0, 'nothing was saved');
  const failed = await dialog.locator('.transfer[data-state="failed"]').allInnerTexts();
  assert.equal(failed.length, 3, failed.join('\n'));
  assert.ok(failed.some((t) => t.includes('..')), failed.join('\n'));
  await page.close();
});

test('debug: a distroless pod gets a debug container, attached in a tab', async () => {
  const page = await pageOn('distroless-0');
  // The linked terminal cannot start: the page says why and where to go.
  await page.locator('#status', { hasText: 'use Debug' }).waitFor();
  assert.ok(await page.locator('#debug-toggle.suggested').count(), 'Debug is marked for a pod without a shell');
  await page.locator('#debug-toggle').click();
  const dialog = page.locator('#debug-dialog');
  await dialog.getByText('cannot be removed').waitFor();
  await dialog.locator('[name="image"]').fill('busybox:1.36');
  await dialog.locator('[name="create"]').click();
  await page.locator('.tab', { hasText: 'debugger-' }).waitFor();
  await waitForLine(page, /[$#] ?$/);
  await page.keyboard.type('echo debug-$((6*7))\n');
  await waitForLine(page, /^debug-42$/);
  // Asked again with the same image: the running one is reused, not a second one made.
  await page.locator('#debug-toggle').click();
  await dialog.locator('[name="image"]').fill('busybox:1.36');
  await dialog.getByText(/reuses .*debugger-/).waitFor();
  await dialog.locator('[name="create"]').click();
  await page.waitForFunction(() => document.querySelectorAll('.tab').length >= 2);
  const pod = await (await fetch(`${dev.url}clusters/dev/api/v1/namespaces/default/pods/distroless-0`)).json();
  assert.equal(pod.spec.ephemeralContainers.length, 1);
  // The container picker lists it, marked.
  const labels = await page.locator('#container option').allInnerTexts();
  assert.ok(labels.some((l) => /debugger-\w+ \(debug\)/.test(l)), labels.join(', '));
  await page.close();
});
