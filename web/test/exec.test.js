// Unit tests: the page's side of the exec protocol (URLs, frames, exit status).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLOSE, RESIZE, STDIN, binaryStdinFrame, describe, execPath, exitOf, resizeFrame, socketUrl, stdinFrame, toneOf } from '../page/exec.js';

const t = { cluster: 'dev', namespace: 'default', pod: 'web-0', container: 'app' };

test('exec paths are relative, one command parameter per argv element', () => {
  assert.equal(
    execPath(t, { stdin: true, tty: true }),
    'clusters/dev/api/v1/namespaces/default/pods/web-0/exec?container=app&stdin=true&stdout=true&stderr=false&tty=true',
  );
  assert.equal(
    execPath({ ...t, container: undefined }, { command: ['ls', '-l', 'a b&c'], stdin: false, tty: false }),
    'clusters/dev/api/v1/namespaces/default/pods/web-0/exec?command=ls&command=-l&command=a+b%26c&stdin=false&stdout=true&stderr=true&tty=false',
  );
});

test('socket URLs follow the page: ws for http, wss for https, under its sub-path', () => {
  assert.equal(socketUrl('clusters/x', 'http://h:8080/#/a/b/c'), 'ws://h:8080/clusters/x');
  assert.equal(socketUrl('clusters/x', 'https://gw.example/tools/term/'), 'wss://gw.example/tools/term/clusters/x');
});

test('frames', () => {
  assert.deepEqual([...stdinFrame('é')], [STDIN, 0xc3, 0xa9]);
  assert.deepEqual([...binaryStdinFrame('\x1b[M\xff')], [STDIN, 0x1b, 0x5b, 0x4d, 0xff]);
  const r = resizeFrame(120, 40);
  assert.equal(r[0], RESIZE);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(r.subarray(1))), { Width: 120, Height: 40 });
  assert.equal(CLOSE, 255);
});

test('exit status from channel 3', () => {
  assert.deepEqual(exitOf({ status: 'Success' }), { code: 0 });
  assert.deepEqual(
    exitOf({
      status: 'Failure',
      reason: 'NonZeroExitCode',
      details: { causes: [{ reason: 'ExitCode', message: '3' }] },
    }),
    { code: 3 },
  );
  assert.deepEqual(exitOf({ status: 'Failure', message: 'container not found' }), {
    message: 'container not found',
  });
});

test('status line words', () => {
  assert.equal(describe({ kind: 'exited', code: 3 }), 'exited with code 3');
  assert.equal(describe({ kind: 'lost', code: 1001, reason: 'server draining' }), 'the server went away: server draining');
  // The gateway's close reasons, in the user's words.
  const lost = (code, reason) => describe({ kind: 'lost', code, reason });
  assert.match(lost(1006, ''), /^connection lost \(network, proxy or server\)/);
  assert.doesNotMatch(lost(1006, ''), /close frame/);
  assert.match(lost(1001, 'podterm is shutting down'), /server is restarting/);
  assert.equal(lost(1008, 'idle timeout'), 'closed after being idle too long');
  assert.match(lost(1008, 'maximum session duration'), /maximum length/);
  assert.equal(lost(1011, 'cluster: connection lost (unexpected EOF)'), 'the cluster ended the session: connection lost (unexpected EOF)');
  assert.equal(describe({ kind: 'closed', reason: 'interrupted' }), 'interrupted');
  // The colour follows the news: exit 0 is good, a refusal or an error bad, a close neither.
  assert.equal(toneOf({ kind: 'exited', code: 0 }), 'good');
  assert.equal(toneOf({ kind: 'exited', code: 2 }), 'bad');
  assert.equal(toneOf({ kind: 'refused', message: 'no' }), 'bad');
  assert.equal(toneOf({ kind: 'closed', reason: 'interrupted' }), 'neutral');
  assert.equal(describe({ kind: 'refused', message: 'denied by rule "ops-readonly"' }), 'refused: denied by rule "ops-readonly"');
});
