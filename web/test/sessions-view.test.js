// The Sessions view's words for a row of GET api/sessions (sessions-view.js).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { commandOf, formatAge, formatBytes, stateOf, targetOf, watchPath } from '../page/sessions-view.js';

const entry = {
  id: 'ab12',
  user: 'alice',
  cluster: 'dev',
  namespace: 'default',
  pod: 'web-0',
  container: 'app',
  command: [],
  tty: true,
  start: '2026-12-04T08:00:00Z',
  bytes_in: 10,
  bytes_out: 5000,
  replica: '10.0.0.7:8081',
  attached: true,
  resumable: true,
  watchers: [],
};

test('bytes in binary units', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1023), '1023 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(3 * 1024 * 1024), '3.0 MiB');
  assert.equal(formatBytes(1.1 * 1024 ** 3), '1.1 GiB');
});

test('ages, shortest unit first, never negative', () => {
  const t0 = Date.parse(entry.start);
  assert.equal(formatAge(entry.start, t0 - 5000), '0 s');
  assert.equal(formatAge(entry.start, t0 + 12_000), '12 s');
  assert.equal(formatAge(entry.start, t0 + 4 * 60_000 + 59_000), '4 min');
  assert.equal(formatAge(entry.start, t0 + (3 * 60 + 5) * 60_000), '3 h 5 min');
  assert.equal(formatAge(entry.start, t0 + 49 * 3600_000), '2 d 1 h');
  assert.equal(formatAge('not a time', t0), '');
});

test('target, command, state and the watch path of a row', () => {
  assert.equal(targetOf(entry), 'dev: default/web-0/app');
  assert.equal(targetOf({ ...entry, container: null }), 'dev: default/web-0');
  assert.equal(commandOf(entry), 'shell');
  assert.equal(commandOf({ ...entry, command: ['ls', '-l'] }), 'ls -l');
  assert.equal(stateOf(entry), 'attached');
  assert.equal(stateOf({ ...entry, attached: false }), 'detached');
  assert.equal(stateOf({ ...entry, attached: false, resumable: false }), 'closing');
  assert.equal(stateOf({ ...entry, watchers: ['bob', 'carol'] }), 'attached · watched by bob, carol');
  assert.equal(watchPath({ ...entry, id: 'a/b' }), 'api/sessions/a%2Fb/watch?replica=10.0.0.7%3A8081');
});
