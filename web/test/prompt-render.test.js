// The restricted prompt's drawing over wrapped rows, replayed on a tiny terminal model (cursor
// moves, erase below, wrapping with xterm's pending wrap), so a redraw never leaves a copy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cells, leave, redraw } from '../page/prompt-render.js';

/** A screen of `cols` columns that understands what redraw() and leave() write. */
class Screen {
  constructor(cols) {
    this.cols = cols;
    /** @type {string[][]} */
    this.rows = [[]];
    this.row = 0;
    this.col = 0;
    this.pending = false;
  }

  write(s) {
    for (let i = 0; i < s.length; ) {
      const m = /^\x1b\[(\d*)([ABCJ])/.exec(s.slice(i));
      if (m) {
        const n = Number(m[1] || 1);
        if (m[2] === 'A') this.row = Math.max(0, this.row - n);
        if (m[2] === 'B') this.row += n;
        if (m[2] === 'C') this.col = Math.min(this.cols - 1, this.col + n);
        if (m[2] === 'J') {
          this.rows[this.row] = (this.rows[this.row] ?? []).slice(0, this.col);
          this.rows.length = this.row + 1;
        }
        this.pending = false;
        i += m[0].length;
        continue;
      }
      const ch = String.fromCodePoint(s.codePointAt(i));
      i += ch.length;
      if (ch === '\r') {
        this.col = 0;
        this.pending = false;
      } else if (ch === '\n') {
        this.row += 1;
        this.pending = false;
      } else {
        const w = cells(ch);
        if (w === 0) {
          // A combining mark joins the character before it.
          const line = (this.rows[this.row] ??= []);
          const at = this.pending ? this.col : this.col - 1;
          line[at] = (line[at] ?? '') + ch;
          continue;
        }
        if (this.pending || this.col + w > this.cols) {
          this.row += 1;
          this.col = 0;
          this.pending = false;
        }
        const line = (this.rows[this.row] ??= []);
        line[this.col] = ch;
        if (w === 2) line[this.col + 1] = '';
        this.col += w;
        if (this.col >= this.cols) {
          this.col = this.cols - 1;
          this.pending = true;
        }
      }
      while (this.rows.length <= this.row) this.rows.push([]);
    }
  }

  text() {
    return this.rows.map((r) => r.join('')).join('\n');
  }
}

function typeInto(screen, prompt, keys) {
  let rowsAbove = 0;
  const chars = [];
  for (const k of keys) {
    chars.push(k);
    const r = redraw({ prompt, chars, cursor: chars.length, cols: screen.cols, rowsAbove });
    screen.write(r.out);
    rowsAbove = r.rowsAbove;
  }
  return { chars, rowsAbove };
}

test('cells: wide characters take two, combining marks none', () => {
  assert.equal(cells('abc'), 3);
  assert.equal(cells('你好'), 4);
  assert.equal(cells('e\u0301'), 1);
  assert.equal(cells('🙂'), 2);
});

test('typing past the width wraps once: no row is repeated', () => {
  const screen = new Screen(10);
  const line = 'echo abcdefghijklmnopqrstuvwxyz';
  typeInto(screen, '$ ', [...line]);
  assert.equal(screen.text(), ['$ echo abc', 'defghijklm', 'nopqrstuvw', 'xyz'].join('\n'));
  assert.deepEqual([screen.row, screen.col], [3, 3]);
});

test('wide and combining characters wrap by cells, and the cursor lands after them', () => {
  const screen = new Screen(8);
  const { chars, rowsAbove } = typeInto(screen, '> ', [...'你好世界e\u0301x']);
  assert.equal(screen.text(), ['> 你好世', '界éx'].join('\n').replace('é', 'e\u0301'));
  // Cursor to just after 好 (index 2): cell 2 + 4 = 6, row 0.
  const r = redraw({ prompt: '> ', chars, cursor: 2, cols: 8, rowsAbove });
  screen.write(r.out);
  assert.deepEqual([screen.row, screen.col, r.rowsAbove], [0, 6, 0]);
});

test('a line exactly one row long puts the cursor on the next row', () => {
  const screen = new Screen(6);
  const { rowsAbove } = typeInto(screen, '$ ', [...'abcd']);
  assert.deepEqual([screen.row, screen.col, rowsAbove], [1, 0, 1]);
});

test('editing in the middle, then a resize redraw, then leaving, keeps one copy', () => {
  const screen = new Screen(10);
  let { chars, rowsAbove } = typeInto(screen, '$ ', [...'0123456789abcdef']);
  // Cursor home, then a redraw at the same width: still one copy.
  let r = redraw({ prompt: '$ ', chars, cursor: 0, cols: 10, rowsAbove });
  screen.write(r.out);
  rowsAbove = r.rowsAbove;
  assert.equal(screen.text(), ['$ 01234567', '89abcdef'].join('\n'));
  screen.write(leave({ prompt: '$ ', chars, cols: 10, rowsAbove }));
  screen.write('out');
  assert.equal(screen.text(), ['$ 01234567', '89abcdef', 'out'].join('\n'));
});

test('leaving a prompt that fills its last row exactly puts the output right under it', () => {
  const screen = new Screen(6);
  const { chars, rowsAbove } = typeInto(screen, '$ ', [...'abcd']);
  screen.write(leave({ prompt: '$ ', chars, cols: 6, rowsAbove }));
  screen.write('out');
  assert.equal(screen.text(), ['$ abcd', 'out'].join('\n'));
});
