// The restricted prompt's line editing: a line, a cursor and a history, driven by the bytes a
// terminal sends for keys (readline's common bindings). Pure: the caller draws.

/** Most lines remembered. */
export const HISTORY_LIMIT = 500;

const WORD = /[^\s]/;

export class LineEditor {
  constructor() {
    /** @type {string[]} code points of the line */
    this.chars = [];
    this.cursor = 0;
    /** @type {string[]} */
    this.history = [];
    /** index into history while browsing it; history.length = the line being edited */
    this.browse = 0;
    /** the line being edited, kept while browsing history */
    this.draft = [];
  }

  get line() {
    return this.chars.join('');
  }

  /**
   * Applies terminal input (typed keys or pasted text).
   * Returns the lines completed by Enter (usually none or one), or 'interrupt' for Ctrl+C,
   * 'clear' for Ctrl+L, 'eof' for Ctrl+D on an empty line.
   * @param {string} data
   * @returns {{lines: string[], signal?: 'interrupt' | 'clear' | 'eof'}}
   */
  feed(data) {
    const lines = [];
    let i = 0;
    while (i < data.length) {
      const seq = escapeAt(data, i);
      if (seq) {
        this.#escape(seq);
        i += seq.length;
        continue;
      }
      const ch = String.fromCodePoint(data.codePointAt(i));
      i += ch.length;
      switch (ch) {
        case '\r':
        case '\n':
          if (ch === '\n' && i >= 2 && data[i - 2] === '\r') break; // CR LF from a paste
          lines.push(this.#submit());
          break;
        case '\x7f':
        case '\b':
          this.#deleteBack(1);
          break;
        case '\x01': // Ctrl+A
          this.cursor = 0;
          break;
        case '\x05': // Ctrl+E
          this.cursor = this.chars.length;
          break;
        case '\x02': // Ctrl+B
          this.#move(-1);
          break;
        case '\x06': // Ctrl+F
          this.#move(1);
          break;
        case '\x0b': // Ctrl+K
          this.chars.splice(this.cursor);
          break;
        case '\x15': // Ctrl+U
          this.chars.splice(0, this.cursor);
          this.cursor = 0;
          break;
        case '\x17': // Ctrl+W
          this.#deleteBack(this.cursor - this.#wordStart());
          break;
        case '\x10': // Ctrl+P
          this.#history(-1);
          break;
        case '\x0e': // Ctrl+N
          this.#history(1);
          break;
        case '\x03': // Ctrl+C
          this.chars = [];
          this.cursor = 0;
          this.browse = this.history.length;
          return { lines, signal: 'interrupt' };
        case '\x0c': // Ctrl+L
          return { lines, signal: 'clear' };
        case '\x04': // Ctrl+D
          if (this.chars.length === 0) return { lines, signal: 'eof' };
          this.chars.splice(this.cursor, 1);
          break;
        case '\t':
          this.#insert(' ');
          break;
        default:
          if (ch >= ' ') this.#insert(ch);
      }
    }
    return { lines };
  }

  #insert(ch) {
    this.chars.splice(this.cursor, 0, ch);
    this.cursor += 1;
  }

  #deleteBack(n) {
    const from = Math.max(0, this.cursor - n);
    this.chars.splice(from, this.cursor - from);
    this.cursor = from;
  }

  #move(d) {
    this.cursor = Math.min(this.chars.length, Math.max(0, this.cursor + d));
  }

  #wordStart() {
    let i = this.cursor;
    while (i > 0 && !WORD.test(this.chars[i - 1])) i -= 1;
    while (i > 0 && WORD.test(this.chars[i - 1])) i -= 1;
    return i;
  }

  #wordEnd() {
    let i = this.cursor;
    while (i < this.chars.length && !WORD.test(this.chars[i])) i += 1;
    while (i < this.chars.length && WORD.test(this.chars[i])) i += 1;
    return i;
  }

  #submit() {
    const line = this.line;
    if (line.trim() !== '' && this.history.at(-1) !== line) {
      this.history.push(line);
      if (this.history.length > HISTORY_LIMIT) this.history.shift();
    }
    this.chars = [];
    this.cursor = 0;
    this.browse = this.history.length;
    this.draft = [];
    return line;
  }

  #history(d) {
    const next = this.browse + d;
    if (next < 0 || next > this.history.length) return;
    if (this.browse === this.history.length) this.draft = this.chars;
    this.browse = next;
    this.chars = next === this.history.length ? this.draft : [...this.history[next]];
    this.cursor = this.chars.length;
  }

  /** @param {string} seq */
  #escape(seq) {
    switch (seq) {
      case '\x1b[A':
      case '\x1bOA':
        this.#history(-1);
        break;
      case '\x1b[B':
      case '\x1bOB':
        this.#history(1);
        break;
      case '\x1b[C':
      case '\x1bOC':
        this.#move(1);
        break;
      case '\x1b[D':
      case '\x1bOD':
        this.#move(-1);
        break;
      case '\x1b[H':
      case '\x1bOH':
      case '\x1b[1~':
        this.cursor = 0;
        break;
      case '\x1b[F':
      case '\x1bOF':
      case '\x1b[4~':
        this.cursor = this.chars.length;
        break;
      case '\x1b[3~': // Delete
        this.chars.splice(this.cursor, 1);
        break;
      case '\x1bb': // Alt+B
      case '\x1b[1;5D': // Ctrl+Left
        this.cursor = this.#wordStart();
        break;
      case '\x1bf': // Alt+F
      case '\x1b[1;5C': // Ctrl+Right
        this.cursor = this.#wordEnd();
        break;
      case '\x1b\x7f': // Alt+Backspace
        this.#deleteBack(this.cursor - this.#wordStart());
        break;
      case '\x1b[200~': // bracketed paste markers: the text between them is plain input
      case '\x1b[201~':
      default:
        break;
    }
  }
}

/**
 * The escape sequence starting at `i`, if any: ESC [ params final, ESC O x, or ESC x.
 * @param {string} s
 * @param {number} i
 */
function escapeAt(s, i) {
  if (s[i] !== '\x1b') return null;
  if (s[i + 1] === '[') {
    let j = i + 2;
    while (j < s.length && /[0-9;]/.test(s[j])) j += 1;
    return s.slice(i, Math.min(j + 1, s.length));
  }
  if (s[i + 1] === 'O' && i + 2 < s.length) return s.slice(i, i + 3);
  return s.slice(i, Math.min(i + 2, s.length));
}
