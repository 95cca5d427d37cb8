// What every tab's session shares: its terminal, its exec, its status, focus, fit and dispose.

/** @typedef {import('./shell-session.js').TabStatus} TabStatus */

export class TabSession {
  /**
   * @param {object} o
   * @param {import('./terminal.js').View} o.view the tab's terminal
   * @param {(s: TabStatus) => void} o.onStatus
   * @param {TabStatus} status the status before the first one reported
   */
  constructor(o, status) {
    this.o = o;
    this.view = o.view;
    this.term = this.view.term;
    /** @type {import('./exec.js').ExecSession | null} */
    this.exec = null;
    /** @type {TabStatus} */
    this.status = status;
    /** @type {{dispose(): void}[]} terminal listeners, disposed with the session */
    this.subscriptions = [];
    /** what typed keys pass through first (the on-screen Ctrl and Alt of touch screens) */
    this.keyFilter = (/** @type {string} */ data) => data;
  }

  /** @param {TabStatus} s */
  setStatus(s) {
    this.status = s;
    this.o.onStatus(s);
  }

  focus() {
    this.term.focus();
  }

  fit() {
    this.view.fit.fit();
  }

  /** Ends the session; the terminal stays the tab's. */
  dispose() {
    for (const s of this.subscriptions) s.dispose();
    if (this.exec && !this.exec.ended) this.exec.close('tab closed');
  }
}
