// Unit tests: writing command output without breaking UTF-8 across frames.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Utf8Carry, completeLength, lfToCrlf } from '../page/utf8.js';

const bytes = (s) => new TextEncoder().encode(s);
const text = (b) => new TextDecoder().decode(b);

test('completeLength stops before a cut sequence', () => {
  const euro = bytes('a€'); // 61 e2 82 ac
  assert.equal(completeLength(euro), 4);
  assert.equal(completeLength(euro.subarray(0, 3)), 1);
  assert.equal(completeLength(euro.subarray(0, 2)), 1);
  const smile = bytes('🙂'); // 4 bytes
  for (let n = 1; n < 4; n += 1) assert.equal(completeLength(smile.subarray(0, n)), 0);
  assert.equal(completeLength(new Uint8Array(0)), 0);
  assert.equal(completeLength(bytes('plain')), 5);
});

test('Utf8Carry reassembles every split of a multi-byte text', () => {
  const all = bytes('é€🙂日本x');
  for (let cut = 0; cut <= all.length; cut += 1) {
    const c = new Utf8Carry();
    const a = c.push(all.slice(0, cut));
    const b = c.push(all.slice(cut));
    assert.equal(text(a) + text(b) + text(c.flush()), 'é€🙂日本x', `cut at ${cut}`);
    assert.ok(!text(a).includes('\uFFFD'), `cut at ${cut}`);
  }
});

test('lfToCrlf adds CR before bare LF only', () => {
  assert.equal(text(lfToCrlf(bytes('a\nb\r\nc\n'))), 'a\r\nb\r\nc\r\n');
  const none = bytes('no newline');
  assert.equal(lfToCrlf(none), none);
});
