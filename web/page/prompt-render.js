// Drawing the restricted prompt's line where it may wrap over several rows: the escape
// sequences that redraw it in place and put the cursor where the editor's cursor is. Pure:
// widths are counted in terminal cells (wide characters 2, combining marks 0), as xterm.js
// with the unicode11 addon counts them.

/**
 * Cells a string takes in the terminal.
 * @param {string} text
 */
export function cells(text) {
  let n = 0;
  for (const ch of text) n += charCells(ch.codePointAt(0) ?? 0);
  return n;
}

const ZERO = /^[\p{Mn}\p{Me}\u200b-\u200f]$/u;

/** @param {number} cp */
function charCells(cp) {
  if (cp < 0x300) return cp < 0x20 ? 0 : 1;
  if (ZERO.test(String.fromCodePoint(cp))) return 0;
  const wide =
    (cp >= 0x1100 && cp <= 0x115f) ||
    (cp >= 0x2e80 && cp <= 0x303e) ||
    (cp >= 0x3041 && cp <= 0x33ff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0xa000 && cp <= 0xa4cf) ||
    (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) ||
    (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x1f300 && cp <= 0x1f64f) ||
    (cp >= 0x1f900 && cp <= 0x1f9ff) ||
    (cp >= 0x20000 && cp <= 0x3fffd);
  return wide ? 2 : 1;
}

/**
 * Where a cell index of the drawn prompt falls: its row (from the prompt's first) and column.
 * @param {number} cell
 * @param {number} cols
 */
function at(cell, cols) {
  return { row: Math.floor(cell / cols), col: cell % cols };
}

/**
 * The escape sequences that redraw `prompt` + `chars` in place and leave the cursor after
 * `chars[0..cursor]`, given that the cursor now sits `rowsAbove` rows below the prompt's first
 * row. Returns them and the new `rowsAbove`.
 * @param {{prompt: string, chars: string[], cursor: number, cols: number, rowsAbove: number}} s
 */
export function redraw({ prompt, chars, cursor, cols, rowsAbove }) {
  const text = prompt + chars.join('');
  const width = cells(text);
  const target = cells(prompt) + cells(chars.slice(0, cursor).join(''));
  let out = rowsAbove > 0 ? `\x1b[${rowsAbove}A` : '';
  out += `\r\x1b[J${text}`;
  // After the text the cursor is at cell `width`; at exactly a full row it waits at that row's
  // end instead (xterm's pending wrap), so a space then a return makes the next row and goes
  // there, and the cursor is at cell `width` in both cases.
  if (width > 0 && width % cols === 0) out += ' \r';
  const end = at(width, cols);
  const goal = at(target, cols);
  if (end.row > goal.row) out += `\x1b[${end.row - goal.row}A`;
  out += '\r';
  if (goal.col > 0) out += `\x1b[${goal.col}C`;
  return { out, rowsAbove: goal.row, cell: target };
}

/**
 * The sequences that move from the cursor (`rowsAbove` rows below the prompt's first row, as
 * redraw() left it) to a fresh line after the whole drawn prompt, e.g. before a command's
 * output. A prompt that fills its last row exactly already has the row after it (redraw()
 * made it), so the output goes there rather than one row lower.
 * @param {{prompt: string, chars: string[], cols: number, rowsAbove: number}} s
 */
export function leave({ prompt, chars, cols, rowsAbove }) {
  const width = cells(prompt + chars.join(''));
  const end = at(width, cols);
  const down = end.row - rowsAbove;
  const fresh = width > 0 && end.col === 0 ? '\r' : '\r\n';
  return `${down > 0 ? `\x1b[${down}B` : ''}${fresh}`;
}
