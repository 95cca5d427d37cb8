// An interactive tab: a tty exec running the container's shell, relayed byte for byte.

import {
  ExecSession,
  binaryStdinFrame,
  describe,
  execPath,
  isTerminalReport,
  socketUrl,
  stdinFrame,
  toneOf,
} from './exec.js';
import { TabSession } from './tab-session.js';

/**
 * @typedef {import('./exec.js').Target} Target
 * @typedef {import('./exec.js').Ending} Ending
 * @typedef {{text: string, state: 'connecting' | 'connected' | 'ended', canRestart: boolean,
 *   tone?: 'good' | 'bad' | 'neutral', flash?: string}} TabStatus
 */

export class ShellSession extends TabSession {
  /**
   * @param {object} o
   * @param {Target} o.target
   * @param {import('./terminal.js').View} o.view the tab's terminal
   * @param {(s: TabStatus) => void} o.onStatus
   * @param {any} [o.resumeFrom] a session to come back to (a reload), from ExecSession.resumable
   * @param {boolean} [o.attach] attach to the container's own process (a debug container)
   */
  constructor(o) {
    super(o, { text: '', state: 'connecting', canRestart: false });
    this.subscriptions = [
      this.term.onData((data) => this.input(this.keyFilter(data))),
      this.term.onBinary((data) => {
        if (this.exec && !this.exec.ended) this.exec.send(binaryStdinFrame(data));
      }),
      this.term.onResize(({ cols, rows }) => this.exec?.resize(cols, rows)),
    ];
  }

  /**
   * Keys typed into the terminal (or before it had a session). Typed before the socket opens:
   * ExecSession queues it and sends it after the first resize.
   * @param {string} data
   */
  input(data) {
    // Output replayed after a drop may hold old terminal queries: xterm's answers stay here.
    if (this.exec?.replaying && isTerminalReport(data)) return;
    if (this.exec && !this.exec.ended) this.exec.send(stdinFrame(data));
    else if (data.includes('\r')) this.start();
  }

  /** Starts a session (the first one, or a new one after an exit or a drop). */
  start() {
    const path = execPath(this.o.target, { stdin: true, tty: true, attach: Boolean(this.o.attach) });
    if (this.exec) this.term.write('\x1b[!p'); // soft reset: modes left by the last session
    this.setStatus({ text: 'connecting…', state: 'connecting', canRestart: false });
    const resumeFrom = this.o.resumeFrom;
    this.o.resumeFrom = null;
    /** @type {string[]} */
    let watchers = [];
    const connected = () => {
      const watched = watchers.length ? ` · watched by ${watchers.join(', ')}` : '';
      this.setStatus({ text: `connected${watched}`, state: 'connected', canRestart: false, tone: 'good' });
    };
    this.exec = new ExecSession({
      url: socketUrl(path, document.baseURI),
      dryRunUrl: new URL(path, document.baseURI).href,
      resumeFrom,
      size: () => ({ cols: this.term.cols, rows: this.term.rows }),
      onOpen: () => {
        connected();
        this.term.focus();
      },
      onReconnecting: (attempt) => {
        const text = attempt > 1 ? `reconnecting… (attempt ${attempt})` : 'reconnecting…';
        this.setStatus({ text, state: 'connecting', canRestart: false });
      },
      onControl: (c) => {
        watchers = c.watchers ?? [];
        if (this.exec?.opened) connected();
      },
      // xterm calls back once it has parsed the bytes: that is what the gateway hears as acked.
      onOutput: (_channel, bytes, done) => this.term.write(bytes, done),
      onEnd: (ending) => this.#ended(ending),
    });
    this.term.focus();
  }

  /** @param {Ending} ending */
  #ended(ending) {
    const text = describe(ending);
    this.setStatus({ text, state: 'ended', canRestart: true, tone: toneOf(ending) });
    const colour = ending.kind === 'exited' && ending.code === 0 ? '2' : '31';
    this.term.write(`\r\n\x1b[${colour}m[${text}]\x1b[0m \x1b[2mpress Enter for a new session\x1b[0m\r\n`);
  }
}
