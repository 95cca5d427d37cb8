// A watch tab: another session's output, read-only, from where it is now (the Sessions view's
// Watch). Keys typed here go nowhere; the watched user's status line names the watchers.

import { ExecSession, describe, socketUrl, toneOf } from './exec.js';
import { watchPath, targetOf } from './sessions-view.js';
import { TabSession } from './tab-session.js';

export class WatchSession extends TabSession {
  /**
   * @param {object} o
   * @param {import('./sessions-view.js').Entry} o.entry the session watched
   * @param {import('./terminal.js').View} o.view the tab's terminal
   * @param {(s: import('./shell-session.js').TabStatus) => void} o.onStatus
   */
  constructor(o) {
    super(o, { text: '', state: 'connecting', canRestart: false });
    this.entry = o.entry;
    this.term.options.disableStdin = true;
    this.keyFilter = () => '';
  }

  /** Keys: a watcher is read-only. */
  input() {}

  start() {
    const path = watchPath(this.entry);
    const whose = `${this.entry.user}'s session in ${targetOf(this.entry)}`;
    this.setStatus({ text: `connecting to ${whose}…`, state: 'connecting', canRestart: false });
    const watching = (c) => {
      const others = (c?.watchers ?? []).length;
      const also = others > 1 ? ` · ${others} watching` : '';
      this.setStatus({ text: `watching ${whose} (read-only)${also}`, state: 'connected', canRestart: false, tone: 'good' });
    };
    this.exec = new ExecSession({
      url: socketUrl(path, document.baseURI),
      dryRunUrl: new URL(path, document.baseURI).href,
      onOpen: () => watching(null),
      onControl: watching,
      onOutput: (_channel, bytes, done) => this.term.write(bytes, done),
      onEnd: (ending) => {
        const text = ending.kind === 'exited' || ending.kind === 'failed'
          ? `the watched session ${describe(ending)}`
          : `watch ended: ${describe(ending)}`;
        this.setStatus({ text, state: 'ended', canRestart: false, tone: toneOf(ending) });
        this.term.write(`\r\n\x1b[2m[${text}]\x1b[0m\r\n`);
      },
    });
  }
}
