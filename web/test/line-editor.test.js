// Unit tests: the restricted prompt's line editing and history.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LineEditor } from '../page/line-editor.js';

const LEFT = '\x1b[D';
const RIGHT = '\x1b[C';
const UP = '\x1b[A';
const DOWN = '\x1b[B';

test('typing, Enter and cursor editing', () => {
  const e = new LineEditor();
  assert.deepEqual(e.feed('ehox'), { lines: [] });
  e.feed(`\x7f${LEFT}${LEFT}c${RIGHT}${RIGHT}`); // fix the typos: "echo"
  assert.equal(e.line, 'echo');
  assert.equal(e.cursor, 4);
  e.feed(' hi\x01# ');
  assert.equal(e.line, '# echo hi');
  e.feed('\x05\x17');
  assert.equal(e.line, '# echo ');
  e.feed('\x01\x0b');
  assert.equal(e.line, '');
  e.feed('ab\x15');
  assert.equal(e.line, '');
  assert.deepEqual(e.feed('ls -l\r'), { lines: ['ls -l'] });
  assert.equal(e.line, '');
});

test('Home, End, Delete and word moves', () => {
  const e = new LineEditor();
  e.feed('one two three');
  e.feed('\x1b[H\x1b[3~');
  assert.equal(e.line, 'ne two three');
  e.feed('\x1b[F\x1bb\x1bb');
  assert.equal(e.cursor, 3);
  e.feed('\x1bf');
  assert.equal(e.cursor, 6);
});

test('history goes back and forth and keeps the draft', () => {
  const e = new LineEditor();
  e.feed('first\rsecond\rsecond\r');
  assert.deepEqual(e.history, ['first', 'second'], 'repeats are stored once');
  e.feed('draft');
  e.feed(UP);
  assert.equal(e.line, 'second');
  e.feed(UP + UP + UP);
  assert.equal(e.line, 'first');
  e.feed(DOWN);
  assert.equal(e.line, 'second');
  e.feed(DOWN);
  assert.equal(e.line, 'draft');
  e.feed(`${UP}\x7f\x7f\x7fond-edit\r`);
  assert.deepEqual(e.history, ['first', 'second', 'second-edit']);
});

test('pasted lines come out one by one; CR LF is one Enter', () => {
  const e = new LineEditor();
  assert.deepEqual(e.feed('\x1b[200~a 1\r\nb 2\nc\x1b[201~'), { lines: ['a 1', 'b 2'] });
  assert.equal(e.line, 'c');
});

test('Ctrl+C drops the line, Ctrl+D on an empty line is eof, Ctrl+L clears', () => {
  const e = new LineEditor();
  e.feed('half');
  assert.equal(e.feed('\x03').signal, 'interrupt');
  assert.equal(e.line, '');
  assert.equal(e.feed('\x04').signal, 'eof');
  assert.equal(e.feed('\x0c').signal, 'clear');
});

test('multi-code-unit characters move as one', () => {
  const e = new LineEditor();
  e.feed(`a🙂b${LEFT}\x7f`);
  assert.equal(e.line, 'ab');
  assert.equal(e.cursor, 1);
});
