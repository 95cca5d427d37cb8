// The Sessions view: the live sessions of the whole fleet that the user may see (their own,
// and everyone's where a policy rule gives them `observe: true`), with watch and end.
// The gateway's list: GET api/sessions (src/session/live.rs).

import { ApiError, getJSON, requestJSON } from './api.js';

/**
 * One row of `GET api/sessions` (src/fleet.rs, `Entry`).
 * @typedef {{id: string, user: string, cluster: string, namespace: string, pod: string,
 *   container?: string | null, command: string[], tty: boolean, start: string,
 *   bytes_in: number, bytes_out: number, replica: string, attached: boolean,
 *   resumable: boolean, watchers: string[]}} Entry
 */

/** How often the open view asks again, in milliseconds. */
export const REFRESH_MS = 3000;

const enc = encodeURIComponent;

/** @returns {Promise<{items: Entry[], unreachable: string[]}>} */
export async function listSessions() {
  const list = await getJSON('api/sessions');
  return { items: list.items ?? [], unreachable: list.unreachable ?? [] };
}

/** The watch socket's path of a session (relative to the page). @param {Entry} e */
export function watchPath(e) {
  return `api/sessions/${enc(e.id)}/watch?replica=${enc(e.replica)}`;
}

/**
 * Ends a session; the gateway's `Status` message, or an ApiError.
 * @param {Entry} e
 */
export async function endSession(e) {
  const status = await requestJSON(`api/sessions/${enc(e.id)}?replica=${enc(e.replica)}`, 'DELETE');
  return status.message ?? 'ended';
}

/** "512 B", "1.5 KiB", "3.2 MiB", "1.1 GiB". @param {number} n */
export function formatBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/**
 * How long ago `start` was, shortest first: "12 s", "4 min", "3 h 5 min", "2 d 1 h".
 * @param {string} start RFC 3339
 * @param {number} now milliseconds since the epoch
 */
export function formatAge(start, now) {
  const t = Date.parse(start);
  if (Number.isNaN(t)) return '';
  const s = Math.max(0, Math.floor((now - t) / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** "dev: default/web-0/app". @param {Entry} e */
export function targetOf(e) {
  return `${e.cluster}: ${e.namespace}/${e.pod}${e.container ? `/${e.container}` : ''}`;
}

/** What runs: the command's words, or "shell" for the container's default shell. */
export function commandOf(/** @type {Entry} */ e) {
  return e.command.length ? e.command.join(' ') : 'shell';
}

/** "attached", "detached", plus who watches. @param {Entry} e */
export function stateOf(e) {
  const state = e.attached ? 'attached' : e.resumable ? 'detached' : 'closing';
  return e.watchers.length ? `${state} · watched by ${e.watchers.join(', ')}` : state;
}

/**
 * The view: a table that refreshes itself while shown.
 */
export class SessionsView {
  /**
   * @param {object} o
   * @param {HTMLElement} o.root the section the table goes in (shown and hidden here)
   * @param {(e: Entry) => void} o.onWatch
   * @param {(message: string) => void} o.onNotice a message for the page's notice line
   * @param {() => string} [o.me] the signed-in user, whose own rows say "you"
   * @param {(shown: boolean) => void} [o.onToggle] after the view was shown or hidden
   */
  constructor(o) {
    this.o = o;
    this.root = o.root;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.timer = null;
    this.asked = 0;
  }

  get shown() {
    return !this.root.hidden;
  }

  toggle() {
    if (this.shown) this.hide();
    else this.show();
  }

  show() {
    this.root.hidden = false;
    this.o.onToggle?.(true);
    this.refresh();
  }

  hide() {
    this.root.hidden = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.o.onToggle?.(false);
  }

  /** Asks for the list now, shows it, and asks again in REFRESH_MS while shown. */
  async refresh() {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.asked += 1;
    const mine = this.asked;
    let list = null;
    let error = '';
    try {
      list = await listSessions();
    } catch (e) {
      error = e instanceof ApiError ? e.message : String(e);
    }
    if (mine !== this.asked || !this.shown) return;
    this.render(list, error);
    this.timer = setTimeout(() => this.refresh(), REFRESH_MS);
  }

  /**
   * @param {{items: Entry[], unreachable: string[]} | null} list
   * @param {string} error
   */
  render(list, error) {
    const head = document.createElement('div');
    head.className = 'sessions-head';
    const title = document.createElement('strong');
    title.textContent = 'Live sessions';
    const refresh = document.createElement('button');
    refresh.type = 'button';
    refresh.textContent = 'Refresh';
    refresh.addEventListener('click', () => this.refresh());
    const close = document.createElement('button');
    close.type = 'button';
    close.textContent = 'Close';
    close.addEventListener('click', () => this.hide());
    head.append(title, refresh, close);
    const parts = [head];
    if (error) parts.push(paragraph('sessions-error', `Cannot list sessions: ${error}`));
    if (list?.unreachable.length) {
      parts.push(paragraph('sessions-error',
        `Not answering (their sessions are missing here): ${list.unreachable.join(', ')}`));
    }
    if (list && list.items.length === 0) parts.push(paragraph('sessions-empty', 'No live sessions you may see.'));
    if (list && list.items.length > 0) parts.push(this.#table(list.items));
    this.root.replaceChildren(...parts);
  }

  /** @param {Entry[]} items */
  #table(items) {
    const table = document.createElement('table');
    const header = table.createTHead().insertRow();
    for (const h of ['user', 'target', 'command', 'started', 'in / out', 'replica', 'state', '']) {
      const th = document.createElement('th');
      th.textContent = h;
      header.append(th);
    }
    const body = table.createTBody();
    const now = Date.now();
    const me = this.o.me?.() ?? '';
    for (const e of items) {
      const row = body.insertRow();
      row.dataset.session = e.id;
      row.dataset.user = e.user;
      row.dataset.state = e.attached ? 'attached' : 'detached';
      const cells = [
        e.user === me ? `${e.user} (you)` : e.user,
        targetOf(e),
        commandOf(e),
        formatAge(e.start, now),
        `${formatBytes(e.bytes_in)} / ${formatBytes(e.bytes_out)}`,
        e.replica || 'this one',
        stateOf(e),
      ];
      for (const text of cells) row.insertCell().textContent = text;
      const actions = row.insertCell();
      actions.className = 'sessions-actions';
      if (e.resumable) actions.append(button('Watch', `Watch ${e.user}'s session read-only`, () => this.o.onWatch(e)));
      actions.append(button('End', `End ${e.user}'s session`, () => this.#end(e)));
    }
    return table;
  }

  /** @param {Entry} e */
  async #end(e) {
    if (!window.confirm(`End ${e.user}'s session in ${targetOf(e)}? Whatever runs in it stops.`)) return;
    try {
      this.o.onNotice('');
      await endSession(e);
    } catch (err) {
      this.o.onNotice(`Cannot end the session: ${err instanceof ApiError ? err.message : err}`);
    }
    this.refresh();
  }
}

function paragraph(className, text) {
  const p = document.createElement('p');
  p.className = className;
  p.textContent = text;
  return p;
}

function button(text, title, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  b.title = title;
  b.addEventListener('click', onClick);
  return b;
}
