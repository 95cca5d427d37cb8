// The toolkit's pure parts: log paths and lines, file paths, debug patches and reuse.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { logPath, splitLine, wholeSeconds } from '../page/logs-view.js';
import { filesPath, joinPath, bytes } from '../page/files.js';
import { debugContainers, debugName, debugPatch, reusable } from '../page/debug.js';
import { containerLabel, containersOf } from '../page/api.js';
import { describe, execPath } from '../page/exec.js';

const t = { cluster: 'dev', namespace: 'default', pod: 'web-0', container: 'app' };

test('log paths ask with timestamps, and a reopen asks from the last line', () => {
  assert.equal(
    logPath(t, { follow: true, tailLines: 100 }),
    'clusters/dev/api/v1/namespaces/default/pods/web-0/log?container=app&timestamps=true&follow=true&tailLines=100',
  );
  assert.equal(
    logPath(t, { follow: true, tailLines: 100, sinceTime: '2026-01-01T00:00:01Z' }),
    'clusters/dev/api/v1/namespaces/default/pods/web-0/log?container=app&timestamps=true&follow=true&sinceTime=2026-01-01T00%3A00%3A01Z',
  );
  assert.match(logPath(t, { previous: true, sinceSeconds: 300 }), /previous=true&sinceSeconds=300$/);
  assert.deepEqual(splitLine('2026-01-02T03:04:05.123456789Z hello world'), { ts: '2026-01-02T03:04:05.123456789Z', text: 'hello world' });
  assert.deepEqual(splitLine('no stamp here'), { ts: '', text: 'no stamp here' });
  assert.equal(wholeSeconds('2026-01-02T03:04:05.123456789Z'), '2026-01-02T03:04:05Z');
});

test('file paths and sizes', () => {
  assert.equal(filesPath(t, '/tmp/a b'), 'api/files/dev/default/web-0?container=app&path=%2Ftmp%2Fa+b');
  assert.equal(joinPath('/tmp/', 'x.txt'), '/tmp/x.txt');
  assert.equal(joinPath('/', 'x'), '/x');
  assert.equal(bytes(1536), '1.5 KiB');
  assert.equal(bytes(12), '12 B');
});

test('debug containers: the patch, reuse of a running one of the same image, names', () => {
  assert.deepEqual(debugPatch({ name: 'debugger-abcde', image: 'busybox:1.36', target: 'app' }), {
    spec: { ephemeralContainers: [{ name: 'debugger-abcde', image: 'busybox:1.36', stdin: true, tty: true, targetContainerName: 'app' }] },
  });
  const pod = {
    spec: { ephemeralContainers: [{ name: 'd1', image: 'busybox:1.36' }, { name: 'd2', image: 'alpine' }] },
    status: { ephemeralContainerStatuses: [{ name: 'd1', state: { running: {} } }, { name: 'd2', state: { terminated: {} } }] },
  };
  assert.equal(reusable(pod, 'busybox:1.36')?.name, 'd1');
  assert.equal(reusable(pod, 'alpine'), null, 'an ended one is not reused');
  assert.equal(debugContainers(pod).length, 2);
  assert.match(debugName(), /^debugger-[a-z0-9]{5}$/);
});

test('pickers mark init and debug containers; attach has its own path', () => {
  const pod = {
    spec: {
      containers: [{ name: 'app' }],
      initContainers: [{ name: 'init' }],
      ephemeralContainers: [{ name: 'debugger-x' }],
    },
  };
  const { names, kinds, preferred } = containersOf(pod);
  assert.deepEqual(names, ['app', 'init', 'debugger-x']);
  assert.equal(preferred, 'app');
  assert.equal(containerLabel('init', kinds), 'init (init)');
  assert.equal(containerLabel('debugger-x', kinds), 'debugger-x (debug)');
  assert.equal(containerLabel('app', kinds), 'app');
  assert.equal(
    execPath({ ...t, container: 'debugger-x' }, { stdin: true, tty: true, attach: true, command: ['sh'] }),
    'clusters/dev/api/v1/namespaces/default/pods/web-0/attach?container=debugger-x&stdin=true&stdout=true&stderr=false&tty=true',
  );
});

test('a container without a shell points to Debug; a refused stream says so', () => {
  const failed = describe({ kind: 'failed', message: 'failed to exec in container: starting container process caused: exec: "sh": executable file not found in $PATH: unknown' });
  assert.match(failed, /use Debug to add a debug container$/);
  assert.equal(describe({ kind: 'failed', message: 'boom' }), 'failed: boom');
  assert.equal(
    describe({ kind: 'lost', code: 1008, reason: 'refused: tar entry "x/../y" has a `..` segment' }),
    'closed: podterm refused what the stream carried (tar entry "x/../y" has a `..` segment)',
  );
});
