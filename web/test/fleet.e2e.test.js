// End to end in headless Chromium against two `podterm serve` replicas behind a proxy that
// plays the API gateway and can cut connections (web/test-support/fleet.js): a shell keeps
// counting across a forced drop that sends the reconnect to the other replica, with no gap
// and no repeat; keys typed around a drop arrive once; an observer watches and ends another
// user's session held by the other replica from the Sessions view; and when the replica that
// held a session is gone, the page says so and offers a new session.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, screenLines, waitForLine } from '../test-support/browser.js';
import { startFleet } from '../test-support/fleet.js';

const POLICY = `
rules:
  - name: observers
    users: [bob]
    mode: shell
    observe: true
  - name: devs
    groups: [devs]
    mode: shell
`;

let fleet;
let browser;

before(async () => {
  fleet = await startFleet({ policy: POLICY });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await fleet?.stop();
});

/** A page of `user`'s with a shell in default/tools, `rows` high enough for the test. */
async function shell(user, { height = 700 } = {}) {
  const page = await browser.context.newPage();
  await page.setViewportSize({ width: 1100, height });
  await page.goto(`${fleet.url(user)}#/dev/default/tools`);
  await page.locator('#status', { hasText: 'connected' }).waitFor();
  await page.keyboard.type('echo ready-$((20+1))\n');
  await waitForLine(page, /^ready-21$/);
  return page;
}

const resumes = (replica) => fleet.proxy.seen[replica].filter((r) => /^GET \/api\/sessions\/[^/]+\/resume\?/.test(r));

test('a counter keeps counting across a drop to the other replica; keys arrive once', async () => {
  fleet.proxy.route = 0;
  // Tall enough that every number stays on the screen: about 140 rows.
  const page = await shell('alice', { height: 2400 });
  await page.keyboard.type('clear; i=0; while :; do echo $i; i=$((i+1)); sleep 0.05; done\n');
  await waitForLine(page, /^20$/);
  // The network drops; the reconnect reaches replica 1, which relays to replica 0.
  const before = resumes(1).length;
  fleet.proxy.route = 1;
  fleet.proxy.cut();
  await waitForLine(page, /^60$/, 20_000);
  await page.keyboard.press('Control+C');
  await waitForLine(page, /\^C/);
  assert.ok(resumes(1).length > before, `replica 1 was asked to resume: ${fleet.proxy.seen[1].join(', ')}`);
  const numbers = (await screenLines(page)).filter((l) => /^\d+$/.test(l)).map(Number);
  assert.ok(numbers.length > 60, `numbers on the screen: ${numbers.length}`);
  assert.deepEqual(numbers, numbers.map((_, i) => i), 'every number once, in order, from 0');

  // Keys: some typed before the drop, some racing it, some while it is down, some after.
  await page.keyboard.type('clear; read -r line; echo "got:[$line]"\n');
  await page.keyboard.type('abc');
  await page.waitForTimeout(100); // "abc" reaches the shell (echoed) before the cut
  fleet.proxy.route = 0;
  await page.keyboard.type('def');
  fleet.proxy.cut();
  await page.keyboard.type('ghi');
  await page.locator('#status', { hasText: /^connected/ }).waitFor();
  await page.keyboard.type('jkl\n');
  await waitForLine(page, /^got:\[/);
  const got = (await screenLines(page)).filter((l) => l.startsWith('got:'));
  assert.deepEqual(got, ['got:[abcdefghijkl]']);
  await page.close();
});

test('an observer on the other replica lists, watches and ends a session from the Sessions view', async () => {
  fleet.proxy.route = 0;
  const alice = await shell('alice');
  fleet.proxy.route = 1;
  const bob = await shell('bob');

  // Alice sees her own sessions only.
  await alice.click('#sessions-toggle');
  await alice.locator('#sessions tbody tr').first().waitFor();
  const aliceSees = await alice.locator('#sessions tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.user));
  assert.ok(aliceSees.length >= 1 && aliceSees.every((u) => u === 'alice'), `alice sees ${aliceSees}`);
  await alice.click('#sessions-toggle');

  // Bob (observe: true) sees alice's session, held by replica 0, from replica 1.
  await bob.click('#sessions-toggle');
  const row = bob.locator('#sessions tbody tr[data-user="alice"][data-state="attached"]').last();
  await row.waitFor();
  assert.match(await row.innerText(), new RegExp(fleet.peers[0].replace(/\./g, '\\.')));
  await row.getByRole('button', { name: 'Watch' }).click();
  await bob.locator('.tab.watching[aria-selected="true"]').waitFor();
  await bob.locator('#status', { hasText: "watching alice's session" }).waitFor();
  await alice.locator('#status', { hasText: 'watched by bob' }).waitFor();

  // What alice runs, bob sees; what bob types goes nowhere.
  await bob.keyboard.type('echo from-bob-$((1+1))\n');
  await alice.keyboard.type('echo watched-$((40+2))\n');
  await waitForLine(bob, /^watched-42$/);
  assert.ok(!(await screenLines(alice)).some((l) => l.includes('from-bob')), "bob's keys reached alice");

  // Bob ends it: alice's page says by whom, bob's watch tab that it ended.
  bob.once('dialog', (d) => d.accept());
  await bob.locator('#sessions tbody tr[data-user="alice"]', { hasText: 'watched by bob' })
    .getByRole('button', { name: 'End' }).click();
  await alice.locator('#status', { hasText: 'ended by bob' }).waitFor();
  await bob.locator('#status', { hasText: /ended/ }).waitFor();
  await alice.close();
  await bob.close();
});

test('when the replica that held a session is gone, the page says so and offers a new one', async () => {
  fleet.proxy.route = 0;
  const page = await shell('alice');
  await fleet.replicas[0].stop('SIGKILL');
  fleet.proxy.route = 1;
  fleet.proxy.cut();
  await page.locator('#status', { hasText: /cannot be reached.*open a new one/ }).waitFor({ timeout: 30_000 });
  assert.equal(await page.locator('#restart').isVisible(), true);
  // Enter opens a new session, on the replica that is left.
  await page.keyboard.press('Enter');
  await page.locator('#status', { hasText: /^connected/ }).waitFor();
  await page.keyboard.type('echo again-$((2+2))\n');
  await waitForLine(page, /^again-4$/);
  await page.close();
});
