// The Logs view: a pod container's log (`pods/log`, as the user), beside the terminals.
// Follows without polling (one streamed response), and when a followed stream ends while the
// view still follows (the log file rotated, or the connection dropped) it reopens from the
// last line's time, drops the lines it already has, and says so.

/** Lines kept in the view; older ones go first. */
export const MAX_LINES = 50_000;
/** How long to wait before reopening a stream that ended, growing to RETRY_MAX_MS. */
const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 8000;

/**
 * The `pods/log` path relative to the page.
 * @param {import('./route.js').Target} t
 * @param {{follow?: boolean, previous?: boolean, tailLines?: number | null,
 *   sinceSeconds?: number | null, sinceTime?: string | null}} o
 */
export function logPath(t, o) {
  const enc = encodeURIComponent;
  const q = new URLSearchParams();
  if (t.container) q.append('container', t.container);
  q.append('timestamps', 'true');
  if (o.follow) q.append('follow', 'true');
  if (o.previous) q.append('previous', 'true');
  if (o.sinceTime) q.append('sinceTime', o.sinceTime);
  else if (o.sinceSeconds) q.append('sinceSeconds', String(o.sinceSeconds));
  if (o.tailLines != null && !o.sinceTime) q.append('tailLines', String(o.tailLines));
  return `clusters/${enc(t.cluster)}/api/v1/namespaces/${enc(t.namespace)}/pods/${enc(t.pod)}/log?${q}`;
}

/**
 * Splits a kubelet log line (`2026-01-02T03:04:05.123456789Z text`) into its time and text.
 * @param {string} line
 * @returns {{ts: string, text: string}}
 */
export function splitLine(line) {
  const space = line.indexOf(' ');
  const ts = space > 0 ? line.slice(0, space) : '';
  if (!/^\d{4}-\d\d-\d\dT/.test(ts)) return { ts: '', text: line };
  return { ts, text: line.slice(space + 1) };
}

/** RFC 3339 with whole seconds, as the API server reads `sinceTime` (rounded down). */
export function wholeSeconds(ts) {
  return ts.replace(/\.\d+Z$/, 'Z');
}

export class LogsView {
  /**
   * @param {object} o
   * @param {import('./route.js').Target} o.target
   * @param {HTMLElement} o.pane where the view lives
   * @param {(s: {text: string, state: string, canRestart: boolean, tone?: string}) => void} o.onStatus
   */
  constructor(o) {
    this.o = o;
    /** @type {{ts: string, text: string, note?: boolean}[]} */
    this.lines = [];
    this.lastTs = '';
    this.generation = 0;
    this.reopened = 0;
    this.#build();
  }

  #build() {
    const bar = document.createElement('div');
    bar.className = 'logs-bar';
    bar.innerHTML = `
      <label><input type="checkbox" name="follow" checked> follow</label>
      <label><input type="checkbox" name="previous"> previous container</label>
      <label>since <select name="since">
        <option value="">the start</option><option value="300">5 min</option>
        <option value="3600">1 hour</option><option value="86400">1 day</option></select></label>
      <label>last <input name="tail" type="number" min="0" value="1000" size="6"> lines</label>
      <label><input type="checkbox" name="timestamps"> timestamps</label>
      <label><input type="checkbox" name="wrap" checked> wrap</label>
      <input name="search" type="search" placeholder="search the log" spellcheck="false">
      <span class="logs-count" aria-live="polite"></span>
      <button type="button" name="download">Download</button>`;
    const pre = document.createElement('pre');
    pre.className = 'logs-lines wrap';
    pre.tabIndex = 0;
    this.o.pane.classList.add('logs-pane');
    this.o.pane.append(bar, pre);
    this.bar = bar;
    this.pre = pre;
    const field = (name) => /** @type {HTMLInputElement} */ (bar.querySelector(`[name="${name}"]`));
    this.field = field;
    for (const name of ['follow', 'previous', 'since', 'tail']) {
      field(name).addEventListener('change', () => this.start());
    }
    field('timestamps').addEventListener('change', () => this.#render());
    field('wrap').addEventListener('change', () => pre.classList.toggle('wrap', field('wrap').checked));
    field('search').addEventListener('input', () => this.#render());
    field('download').addEventListener('click', () => this.download());
  }

  /** (Re)opens the log with the view's options, from scratch. */
  start() {
    this.stop();
    this.lines = [];
    this.lastTs = '';
    this.reopened = 0;
    this.#render();
    const tail = this.field('tail').value;
    this.#open({
      follow: this.field('follow').checked,
      previous: this.field('previous').checked,
      sinceSeconds: Number(this.field('since').value) || null,
      tailLines: tail === '' ? null : Math.max(0, Number(tail)),
    }, 0);
  }

  /** Stops reading. */
  stop() {
    this.generation += 1;
    this.abort?.abort();
    clearTimeout(this.retry);
  }

  /**
   * One request; a followed stream that ends while this view still follows is reopened.
   * @param {any} options
   * @param {number} attempt
   */
  async #open(options, attempt) {
    const generation = this.generation;
    const mine = () => generation === this.generation;
    const abort = new AbortController();
    this.abort = abort;
    this.#status(options.follow ? 'following' : 'loading', 'connecting');
    let res;
    try {
      res = await fetch(logPath(this.o.target, options), { signal: abort.signal });
    } catch {
      if (!mine()) return;
      return this.#again(options, attempt, 'the gateway cannot be reached');
    }
    if (!mine()) return;
    if (!res.ok) {
      let message = `HTTP ${res.status}`;
      try {
        message = (await res.json()).message || message;
      } catch {
        /* not a Status */
      }
      this.#status(message, 'ended', 'bad');
      return;
    }
    this.#status(options.follow ? 'following the log' : 'log read', options.follow ? 'connected' : 'ended', 'good');
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let partial = '';
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch {
        break;
      }
      if (!mine()) return;
      if (chunk.done) break;
      const text = partial + decoder.decode(chunk.value, { stream: true });
      const parts = text.split('\n');
      partial = parts.pop() ?? '';
      this.#add(parts);
    }
    if (!mine()) return;
    if (partial) this.#add([partial]);
    if (!options.follow) {
      this.#status(`${this.lines.length} lines`, 'ended', 'neutral');
      return;
    }
    // Still following: the file rotated or the connection closed. Reopen from the last line.
    this.reopened += 1;
    const at = new Date().toLocaleTimeString();
    this.lines.push({ ts: '', text: `── the log stream ended (the log file rotated, or the connection closed); reopened at ${at} ──`, note: true });
    this.#render();
    this.#open({ ...options, tailLines: this.lastTs ? null : 0, sinceTime: this.lastTs ? wholeSeconds(this.lastTs) : null, sinceSeconds: null }, 0);
  }

  #again(options, attempt, why) {
    const wait = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** attempt);
    this.#status(`${why}; trying again in ${Math.round(wait / 100) / 10} s`, 'connecting', 'bad');
    const generation = this.generation;
    this.retry = setTimeout(() => {
      if (generation === this.generation) this.#open(options, attempt + 1);
    }, wait);
  }

  /** @param {string[]} raw lines as the cluster sent them (with their timestamps) */
  #add(raw) {
    for (const line of raw) {
      const { ts, text } = splitLine(line.replace(/\r$/, ''));
      // After a reopen the first second comes again: keep only what is newer.
      if (ts && this.lastTs && ts <= this.lastTs) continue;
      if (ts) this.lastTs = ts;
      this.lines.push({ ts, text });
    }
    if (this.lines.length > MAX_LINES) this.lines.splice(0, this.lines.length - MAX_LINES);
    this.#render();
  }

  #render() {
    const stamps = this.field('timestamps').checked;
    const needle = this.field('search').value;
    const atBottom = this.pre.scrollTop + this.pre.clientHeight >= this.pre.scrollHeight - 4;
    const shown = needle ? this.lines.filter((l) => l.note || l.text.includes(needle)) : this.lines;
    const frag = document.createDocumentFragment();
    for (const l of shown) {
      const row = document.createElement('div');
      row.className = l.note ? 'log-line log-note' : 'log-line';
      row.textContent = stamps && l.ts ? `${l.ts} ${l.text}` : l.text;
      frag.append(row);
    }
    this.pre.replaceChildren(frag);
    const count = this.bar.querySelector('.logs-count');
    count.textContent = needle ? `${shown.filter((l) => !l.note).length} of ${this.lines.filter((l) => !l.note).length} lines` : '';
    if (atBottom) this.pre.scrollTop = this.pre.scrollHeight;
  }

  /** Saves the lines in the view (with their timestamps) as a text file. */
  download() {
    const text = this.lines.filter((l) => !l.note).map((l) => (l.ts ? `${l.ts} ${l.text}` : l.text)).join('\n');
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([`${text}\n`], { type: 'text/plain' }));
    const t = this.o.target;
    a.download = `${t.pod}${t.container ? `-${t.container}` : ''}.log`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  }

  #status(text, state, tone = 'neutral') {
    this.o.onStatus({ text: `logs: ${text}`, state, canRestart: state === 'ended', tone });
  }
}
