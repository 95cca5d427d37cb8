// A restricted-mode tab: a local command prompt; each line is split into argv and run as its
// own exec without a tty or a shell, as the policy's restricted mode requires.

import { ExecSession, STDERR, describe, execPath, socketUrl, toneOf } from './exec.js';
import { LineEditor } from './line-editor.js';
import { leave, redraw } from './prompt-render.js';
import { ShellWordsError, split } from './shellwords.js';
import { TabSession } from './tab-session.js';
import { Utf8Carry, lfToCrlf } from './utf8.js';

const RED = '\x1b[31m';
const GREEN = '\x1b[32m';
const DIM = '\x1b[2m';
const RESET = '\x1b[0m';

export class RestrictedSession extends TabSession {
  /**
   * @param {object} o
   * @param {import('./exec.js').Target} o.target
   * @param {import('./terminal.js').View} o.view the tab's terminal
   * @param {(s: import('./shell-session.js').TabStatus) => void} o.onStatus
   * @param {{user?: string, rule?: string, allow?: string[][]}} o.whoami
   */
  constructor(o) {
    super(o, { text: '', state: 'connected', canRestart: false });
    this.editor = new LineEditor();
    /** lines waiting while a command runs (a multi-line paste) */
    this.queue = [];
    /** keys typed while a command runs: a shell keeps them for after it, so does this */
    this.typeahead = '';
    this.prompt = `${o.target.namespace}/${o.target.pod}$ `;
    /** rows between the prompt's first row and the cursor, as last drawn */
    this.rowsAbove = 0;
    /** the cursor's cell in the drawn prompt, to find it again after a reflow */
    this.cursorCell = 0;
    /** the line as last drawn */
    this.drawn = [];
    this.subscriptions = [
      this.term.onData((data) => this.input(this.keyFilter(data))),
      // xterm reflows wrapped rows on a resize: the prompt's first row moves with them.
      this.term.onResize(({ cols }) => {
        if (this.exec) return;
        this.rowsAbove = Math.floor(this.cursorCell / cols);
        this.#redraw();
      }),
    ];
  }

  start() {
    const rule = this.o.whoami.rule ? ` (policy rule ${this.o.whoami.rule})` : '';
    this.term.write(
      `${DIM}restricted mode${rule}: each line runs as its own command, without a shell;` +
        ` quotes and backslashes work, $VARS, globs and pipes do not.${RESET}\r\n`,
    );
    const allow = this.o.whoami.allow ?? [];
    if (allow.length > 0) {
      const patterns = allow.map((argv) => argv.join(' ')).join(', ');
      this.term.write(`${DIM}allowed: ${patterns}${RESET}\r\n`);
    }
    this.#ready('ready');
    this.term.focus();
  }

  /**
   * Keys typed into the terminal (or before it had a session).
   * @param {string} data
   */
  input(data) {
    if (this.exec) {
      if (data.includes('\x03')) {
        this.term.write('^C');
        this.typeahead = '';
        this.exec.close('interrupted');
      } else {
        this.typeahead += data;
      }
      return;
    }
    const { lines, signal } = this.editor.feed(data);
    for (const line of lines) this.queue.push(line);
    if (signal === 'interrupt') {
      this.queue = [];
      this.term.write(`^C${this.#leave(this.drawn)}`);
    } else if (signal === 'clear') {
      this.term.clear();
      this.term.write('\x1b[H\x1b[2J');
      this.rowsAbove = 0;
    }
    if (this.queue.length > 0) this.#next();
    else this.#redraw();
  }

  /** Draws the prompt and the line in place, over as many rows as it wraps to. */
  #redraw() {
    const { chars, cursor } = this.editor;
    const r = redraw({ prompt: this.prompt, chars, cursor, cols: this.term.cols, rowsAbove: this.rowsAbove });
    this.rowsAbove = r.rowsAbove;
    this.cursorCell = r.cell;
    this.drawn = [...chars];
    this.term.write(r.out);
  }

  /**
   * The sequences that leave the drawn prompt (showing `chars`) for a fresh line below it.
   * @param {string[]} chars
   */
  #leave(chars) {
    const out = leave({ prompt: this.prompt, chars, cols: this.term.cols, rowsAbove: this.rowsAbove });
    this.rowsAbove = 0;
    this.cursorCell = 0;
    return out;
  }

  #ready(text, tone = 'neutral') {
    this.setStatus({ text, state: 'connected', canRestart: false, tone });
    this.#redraw();
  }

  #next() {
    const line = this.queue.shift();
    // The line as it runs: drawn whole (it may wrap), then a fresh line for its output.
    const chars = [...line];
    const r = redraw({ prompt: this.prompt, chars, cursor: chars.length, cols: this.term.cols, rowsAbove: this.rowsAbove });
    this.rowsAbove = r.rowsAbove;
    this.term.write(r.out + this.#leave(chars));
    let argv;
    try {
      argv = split(line);
    } catch (e) {
      if (!(e instanceof ShellWordsError)) throw e;
      this.term.write(`${RED}${e.message}${RESET}\r\n`);
      return this.#after();
    }
    if (argv.length === 0) return this.#after();
    this.#run(argv);
  }

  /** @param {string[]} argv */
  #run(argv) {
    const path = execPath(this.o.target, { command: argv, stdin: false, tty: false });
    const carry = { out: new Utf8Carry(), err: new Utf8Carry() };
    let lastByte = 0x0a;
    const write = (bytes, colour, done = undefined) => {
      if (bytes.length === 0) return done?.();
      lastByte = bytes[bytes.length - 1];
      const text = lfToCrlf(bytes);
      if (colour) this.term.write(colour);
      this.term.write(text, done);
      if (colour) this.term.write(RESET);
    };
    this.setStatus({ text: `running ${argv[0]}`, state: 'connecting', canRestart: false });
    this.exec = new ExecSession({
      url: socketUrl(path, document.baseURI),
      dryRunUrl: new URL(path, document.baseURI).href,
      onOutput: (channel, bytes, done) => {
        if (channel === STDERR) write(carry.err.push(bytes), RED, done);
        else write(carry.out.push(bytes), null, done);
      },
      onEnd: (ending) => {
        write(carry.out.flush(), null);
        write(carry.err.flush(), RED);
        if (lastByte !== 0x0a) this.term.write(`${DIM}⏎${RESET}\r\n`);
        const text = describe(ending);
        const ok = ending.kind === 'exited' && ending.code === 0;
        this.term.write(`${ok ? GREEN : RED}[${text}]${RESET}\r\n`);
        this.exec = null;
        this.#after(text, toneOf(ending));
      },
    });
  }

  #after(text = 'ready', tone = 'neutral') {
    if (this.queue.length > 0) return this.#next();
    this.#ready(text, tone);
    if (this.typeahead) {
      const keys = this.typeahead;
      this.typeahead = '';
      this.input(keys);
    }
  }
}
