// Unit tests: deep links `#/{cluster}/{namespace}/{pod}[/{container}]`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { format, parse } from '../page/route.js';

test('parses three or four parts', () => {
  assert.deepEqual(parse('#/dev/default/tools'), { cluster: 'dev', namespace: 'default', pod: 'tools' });
  assert.deepEqual(parse('#/dev/default/web-0/app'), {
    cluster: 'dev', namespace: 'default', pod: 'web-0', container: 'app',
  });
});

test('rejects what names no pod', () => {
  for (const h of ['', '#', '#/', '#/dev', '#/dev/default', '#/a/b/c/d/e', '#/a/b/%E0']) {
    assert.equal(parse(h), null, h);
  }
});

test('format and parse round-trip, escaping odd names', () => {
  const t = { cluster: 'prod/eu', namespace: 'team a', pod: 'p#1', container: 'c?x' };
  assert.deepEqual(parse(format(t)), t);
  assert.equal(format({ cluster: 'dev', namespace: 'default', pod: 'tools' }), '#/dev/default/tools');
});
