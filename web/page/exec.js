// The exec channel protocol as the page speaks it (mirrors src/protocol.rs; a test compares
// them) and one exec session over a WebSocket.

export const SUBPROTOCOL_V5 = 'v5.channel.k8s.io';
export const SUBPROTOCOL_V4 = 'v4.channel.k8s.io';
// podterm's flow control (src/protocol/flow.rs): the same protocols plus acks on channel 254.
export const SUBPROTOCOL_FLOW_V5 = 'v5.flow.podterm.dev';
export const SUBPROTOCOL_FLOW_V4 = 'v4.flow.podterm.dev';
// podterm's resume (src/protocol/resume.rs): flow control, plus control messages on 253 and a
// session that outlives its connection.
export const SUBPROTOCOL_RESUME_V5 = 'v5.resume.podterm.dev';
export const SUBPROTOCOL_RESUME_V4 = 'v4.resume.podterm.dev';
export const PROTOCOLS = [
  SUBPROTOCOL_RESUME_V5,
  SUBPROTOCOL_RESUME_V4,
  SUBPROTOCOL_FLOW_V5,
  SUBPROTOCOL_FLOW_V4,
  SUBPROTOCOL_V5,
  SUBPROTOCOL_V4,
];
export const CONTROL = 253;
/** Reconnect delays: the first, the longest (each doubles, with ±30 % jitter). */
export const RECONNECT_FIRST_MS = 500;
export const RECONNECT_MAX_MS = 8000;
export const STDIN = 0;
export const STDOUT = 1;
export const STDERR = 2;
export const ERROR = 3;
export const RESIZE = 4;
export const CLOSE = 255;
export const ACK = 254;
/** Output processed between two acks, at most (the gateway pauses at 1 MiB unacknowledged). */
export const ACK_EVERY = 64 * 1024;

/**
 * @typedef {{cluster: string, namespace: string, pod: string, container?: string}} Target
 * @typedef {{command?: string[], stdin: boolean, tty: boolean, attach?: boolean}} ExecOptions
 */

/**
 * The exec path relative to the page (so the page works under any sub-path); with `attach`,
 * the `pods/attach` path of the container's own process (no command).
 * @param {Target} t
 * @param {ExecOptions} opts
 */
export function execPath(t, opts) {
  const enc = encodeURIComponent;
  const q = new URLSearchParams();
  if (t.container) q.append('container', t.container);
  if (!opts.attach) for (const arg of opts.command ?? []) q.append('command', arg);
  q.append('stdin', String(opts.stdin));
  q.append('stdout', 'true');
  q.append('stderr', String(!opts.tty));
  q.append('tty', String(opts.tty));
  const verb = opts.attach ? 'attach' : 'exec';
  return `clusters/${enc(t.cluster)}/api/v1/namespaces/${enc(t.namespace)}/pods/${enc(t.pod)}/${verb}?${q}`;
}

/**
 * The resume path of a session (src/session/live.rs), from output offset `output`.
 * @param {string} session
 * @param {string} proof
 * @param {number} output
 */
export function resumePath(session, proof, output) {
  const q = new URLSearchParams({ proof, output: String(output) });
  return `api/sessions/${encodeURIComponent(session)}/resume?${q}`;
}

/**
 * Whether `data` (from xterm's onData) is one of the terminal's automatic answers to a query
 * (device attributes, cursor position, status, colours, window reports), not a key.
 * @param {string} data
 */
export function isTerminalReport(data) {
  return /^\x1b\[[?>=]?[\d;]*[cnRt]$/.test(data) || /^\x1b\][\s\S]*(\x07|\x1b\\)$/.test(data)
    || /^\x1bP[\s\S]*\x1b\\$/.test(data) || /^\x1b\[\?[\d;]*\$y$/.test(data);
}

/**
 * The WebSocket URL for a relative path: same host as the page, `wss:` when it is https.
 * @param {string} path
 * @param {string} base the page's URL
 */
export function socketUrl(path, base) {
  const url = new URL(path, base);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.hash = '';
  return url.href;
}

/**
 * What a channel-3 `Status` says: `{code}` for an exit status, else `{message}`.
 * @param {any} status
 * @returns {{code: number} | {message: string}}
 */
export function exitOf(status) {
  if (status?.status === 'Success') return { code: 0 };
  if (status?.reason === 'NonZeroExitCode') {
    const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
    const code = Number.parseInt(cause?.message ?? '', 10);
    if (Number.isInteger(code)) return { code };
  }
  return { message: status?.message || 'the command failed' };
}

/**
 * A stdin frame for text typed into the terminal.
 * @param {string} text
 */
export function stdinFrame(text) {
  const bytes = new TextEncoder().encode(text);
  const frame = new Uint8Array(bytes.length + 1);
  frame[0] = STDIN;
  frame.set(bytes, 1);
  return frame;
}

/**
 * A stdin frame for xterm's binary strings (one byte per char, e.g. mouse reports).
 * @param {string} data
 */
export function binaryStdinFrame(data) {
  const frame = new Uint8Array(data.length + 1);
  frame[0] = STDIN;
  for (let i = 0; i < data.length; i += 1) frame[i + 1] = data.charCodeAt(i) & 0xff;
  return frame;
}

/**
 * An ack frame: `count` stdout/stderr bytes processed so far, big-endian u64.
 * @param {number} count
 */
export function ackFrame(count) {
  const frame = new Uint8Array(9);
  frame[0] = ACK;
  new DataView(frame.buffer).setBigUint64(1, BigInt(count));
  return frame;
}

/** A resize frame. */
export function resizeFrame(cols, rows) {
  const json = new TextEncoder().encode(JSON.stringify({ Width: cols, Height: rows }));
  const frame = new Uint8Array(json.length + 1);
  frame[0] = RESIZE;
  frame.set(json, 1);
  return frame;
}

/**
 * Why an exec ended, as the status line shows it.
 * @typedef {{kind: 'exited', code: number}
 *   | {kind: 'failed', message: string}
 *   | {kind: 'lost', code: number, reason: string}
 *   | {kind: 'closed', reason: string}
 *   | {kind: 'refused', message: string}
 *   | {kind: 'gone', message: string}} Ending (gone: a dropped session that cannot be resumed,
 *   in the gateway's words)
 */

/**
 * One exec over a WebSocket. Input sent before the socket opens is queued and sent right after
 * the first resize, so neither the first keystroke nor the initial size is lost.
 *
 * Output flow control: the consumer calls the `done` callback given with each output once it
 * has processed it (xterm's write callback). With podterm's flow subprotocol the session acks
 * what was processed, and the gateway stops reading the process while too much is not, so the
 * terminal's backlog stays bounded and nothing is discarded.
 */
export class ExecSession {
  /**
   * @param {object} o
   * @param {string} o.url WebSocket URL (see socketUrl)
   * @param {string} o.dryRunUrl http(s) URL of the same exec, asked without an upgrade when
   *   the socket fails before opening, to learn why (the gateway answers the refusal `Status`)
   * @param {(channel: number, bytes: Uint8Array, done: () => void) => void} o.onOutput
   *   stdout/stderr bytes; call `done` once they are processed
   * @param {() => void} [o.onOpen]
   * @param {(ending: Ending) => void} o.onEnd called once
   * @param {() => {cols: number, rows: number} | null} [o.size] the terminal size, if a tty
   */
  constructor(o) {
    this.o = o;
    /** @type {Uint8Array[]} frames other than stdin, waiting for the socket */
    this.pending = [];
    this.opened = false;
    this.ended = false;
    /** @type {{code: number} | {message: string} | null} */
    this.exit = null;
    /** whether the gateway answered the flow subprotocol (resume includes it) */
    this.flow = false;
    /** whether the session outlives its connection (the resume subprotocol) */
    this.resume = false;
    /** @type {any} the last control message: session, proof, grace, input, output, watchers */
    this.control = o.resumeFrom ?? null;
    /** output bytes received (handed to the consumer), processed, and last acked */
    this.received = o.resumeFrom?.output ?? 0;
    this.processed = this.received;
    this.acked = this.received;
    /** outputs handed to the consumer and not yet processed */
    this.unprocessed = 0;
    /** stdin bytes sent, and the frames the gateway has not acknowledged yet */
    this.inputSent = 0;
    /** @type {{end: number, frame: Uint8Array}[]} */
    this.inputLog = [];
    /** until a control message arrives after (re)connecting, stdin waits in inputLog */
    this.resyncing = true;
    /** output offset up to which the gateway replays (the terminal's answers are dropped) */
    this.replayUntil = 0;
    this.attempts = o.resumeFrom ? 1 : 0;
    this.droppedAt = o.resumeFrom ? Date.now() : 0;
    this.#connect(o.resumeFrom
      ? socketUrl(resumePath(o.resumeFrom.session, o.resumeFrom.proof, this.received), document.baseURI)
      : o.url);
  }

  /** @param {string} url */
  #connect(url) {
    this.opened = false;
    const ws = new WebSocket(url, PROTOCOLS);
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => this.#open();
    ws.onmessage = (ev) => this.#message(ev);
    ws.onclose = (ev) => this.#close(ev);
    this.ws = ws;
  }

  #open() {
    this.opened = true;
    const p = this.ws.protocol;
    this.resume = p === SUBPROTOCOL_RESUME_V5 || p === SUBPROTOCOL_RESUME_V4;
    this.flow = this.resume || p === SUBPROTOCOL_FLOW_V5 || p === SUBPROTOCOL_FLOW_V4;
    this.resyncing = this.resume;
    const size = this.o.size?.();
    if (size) this.ws.send(resizeFrame(size.cols, size.rows));
    for (const frame of this.pending) this.ws.send(frame);
    this.pending = [];
    if (!this.resume) this.#sendInputFrom(0);
    this.attempts = 0;
    this.o.onOpen?.();
  }

  /** Sends the logged stdin after byte `from` (what the gateway has not received). */
  #sendInputFrom(from) {
    this.inputLog = this.inputLog.filter((e) => e.end > from);
    for (const e of this.inputLog) {
      const start = e.end - (e.frame.length - 1);
      const skip = Math.max(0, from - start);
      this.ws.send(skip ? Uint8Array.of(STDIN, ...e.frame.subarray(1 + skip)) : e.frame);
    }
    if (!this.resume) this.inputLog = [];
  }

  /** A control message (src/protocol/resume.rs). @param {any} c */
  #controlled(c) {
    this.control = c;
    if (this.resyncing) {
      this.resyncing = false;
      this.replayUntil = c.output ?? 0;
      this.#sendInputFrom(c.input ?? 0);
    } else {
      this.inputLog = this.inputLog.filter((e) => e.end > (c.input ?? 0));
    }
    this.o.onControl?.(c);
  }

  /** Whether output written before the connection came back is still being replayed. */
  get replaying() {
    return this.processed < this.replayUntil;
  }

  /** @param {MessageEvent} ev */
  #message(ev) {
    if (!(ev.data instanceof ArrayBuffer)) return;
    const frame = new Uint8Array(ev.data);
    if (frame.length < 2) return; // no channel byte or an empty "ready" frame
    const channel = frame[0];
    const payload = frame.subarray(1);
    if (channel === CONTROL) {
      try {
        this.#controlled(JSON.parse(new TextDecoder().decode(payload)));
      } catch {
        /* not for this page */
      }
    } else if (channel === STDOUT || channel === STDERR) {
      this.received += payload.length;
      this.unprocessed += 1;
      let called = false;
      const done = () => {
        if (called) return;
        called = true;
        this.#processed(payload.length);
      };
      this.o.onOutput(channel, payload, done);
    } else if (channel === ERROR) {
      try {
        this.exit = exitOf(JSON.parse(new TextDecoder().decode(payload)));
      } catch {
        this.exit = { message: new TextDecoder().decode(payload) };
      }
    }
  }

  /**
   * `n` output bytes were processed: ack every ACK_EVERY bytes, and whenever the consumer has
   * caught up (so the gateway never waits on output that was shown long ago).
   * @param {number} n
   */
  #processed(n) {
    this.unprocessed -= 1;
    this.processed += n;
    if (!this.flow || this.ended || this.ws.readyState !== WebSocket.OPEN) return;
    const behind = this.processed - this.acked;
    if (behind >= ACK_EVERY || (this.unprocessed === 0 && behind > 0)) {
      this.acked = this.processed;
      this.ws.send(ackFrame(this.acked));
    }
  }

  /** @param {CloseEvent} ev */
  async #close(ev) {
    if (this.ended) return;
    // A drop (no close frame) of a session that outlives it: come back, from where we were,
    // unless the gateway says the session is gone (a refused resume).
    const dropped = this.control?.proof && !this.exit && !ev.wasClean;
    if (dropped && this.attempts > 0 && !this.opened) {
      const c = this.control;
      const why = await refusalReason(new URL(resumePath(c.session, c.proof, this.received), document.baseURI).href);
      if (/WebSocket request|cannot be reached$/.test(why)) this.#reconnect();
      else this.#end({ kind: 'gone', message: why });
      return;
    }
    if (dropped && (this.resume || this.attempts > 0)) {
      this.#reconnect();
      return;
    }
    if (this.exit && 'code' in this.exit) {
      this.#end({ kind: 'exited', code: this.exit.code });
    } else if (this.exit) {
      this.#end({ kind: 'failed', message: this.exit.message });
    } else if (!this.opened) {
      this.#end({ kind: 'refused', message: await refusalReason(this.o.dryRunUrl) });
    } else {
      const reason = ev.reason || (ev.code === 1006 ? 'no close frame' : `code ${ev.code}`);
      this.#end({ kind: 'lost', code: ev.code, reason });
    }
  }

  /** Tries the connection again after a drop, with backoff and jitter, within the grace. */
  #reconnect() {
    if (!this.droppedAt || this.opened) this.droppedAt = Date.now();
    this.opened = false;
    this.attempts += 1;
    const grace = (this.control?.grace ?? 300) * 1000;
    if (Date.now() - this.droppedAt > grace) {
      this.#end({ kind: 'lost', code: 1006, reason: 'the connection did not come back in time' });
      return;
    }
    this.o.onReconnecting?.(this.attempts);
    const base = Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** (this.attempts - 1));
    const delay = base * (0.7 + 0.6 * Math.random());
    setTimeout(() => {
      if (this.ended) return;
      const c = this.control;
      this.#connect(socketUrl(resumePath(c.session, c.proof, this.received), document.baseURI));
    }, this.attempts === 1 ? 0 : delay);
  }

  /** What a reload needs to come back to this session, while it can. */
  get resumable() {
    if (!this.resume || this.ended || !this.control?.proof) return null;
    return { session: this.control.session, proof: this.control.proof, output: this.acked, grace: this.control.grace };
  }

  /** @param {Ending} ending */
  #end(ending) {
    if (this.ended) return;
    this.ended = true;
    this.pending = [];
    this.o.onEnd(ending);
  }

  /** Sends a frame now, or right after the socket opens (stdin: once, across drops). */
  send(frame) {
    if (this.ended) return;
    if (frame[0] === STDIN) {
      this.inputSent += frame.length - 1;
      this.inputLog.push({ end: this.inputSent, frame });
      const open = this.ws.readyState === WebSocket.OPEN && this.opened;
      if (open && !this.resyncing) {
        this.ws.send(frame);
        if (!this.resume) this.inputLog = [];
      }
      return;
    }
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(frame);
    else this.pending.push(frame);
  }

  /** Sends the terminal's size (dropped while connecting: the open sends the latest). */
  resize(cols, rows) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(resizeFrame(cols, rows));
  }

  /** Ends the session from this side. */
  close(reason = 'closed by the user') {
    const p = this.ws.protocol;
    const v5 = p === SUBPROTOCOL_V5 || p === SUBPROTOCOL_FLOW_V5 || p === SUBPROTOCOL_RESUME_V5;
    if (this.ws.readyState === WebSocket.OPEN && v5) {
      this.ws.send(new Uint8Array([CLOSE, STDIN]));
    }
    this.ws.close(1000, reason);
    this.#end({ kind: 'closed', reason });
  }
}

/**
 * The status line's words for how a session ended, in the user's terms (the close code and
 * the gateway's reason say what happened; see CloseReason in src/events.rs).
 * @param {Ending} e
 */
export function describe(e) {
  switch (e.kind) {
    case 'exited':
      return `exited with code ${e.code}`;
    case 'failed':
      // A container without a shell (distroless): the way in is a debug container.
      if (/executable file not found/.test(e.message)) {
        return `failed: ${e.message} — this container has no shell: use Debug to add a debug container`;
      }
      return `failed: ${e.message}`;
    case 'refused':
      return `refused: ${e.message}`;
    case 'gone':
      return e.message;
    case 'closed':
      return e.reason;
    case 'lost':
      return lostWords(e.code, e.reason);
    default:
      return 'ended';
  }
}

/** What a close from the gateway's side means to the user. */
function lostWords(code, reason) {
  const after = (prefix) => reason.slice(prefix.length).trim();
  if (code === 1006) return 'connection lost (network, proxy or server)';
  if (reason === 'podterm is shutting down') return 'the server is restarting';
  if (reason === 'idle timeout') return 'closed after being idle too long';
  if (reason === 'maximum session duration') return 'closed: the session reached its maximum length';
  if (reason === 'frame too large') return 'closed: a paste or input too large for one message';
  if (reason.startsWith('cluster:')) return `the cluster ended the session: ${after('cluster:')}`;
  if (reason.startsWith('recording failed:')) return `closed: the session could not be recorded (${after('recording failed:')})`;
  if (reason.startsWith('protocol:')) return `closed: the page and the server disagreed (${after('protocol:')})`;
  if (reason.startsWith('ended by ')) return `ended by ${after('ended by')}`;
  if (reason.startsWith('refused:')) return `closed: podterm refused what the stream carried (${after('refused:')})`;
  if (code === 1001) return `the server went away${reason ? `: ${reason}` : ''}`;
  return `connection closed${reason ? `: ${reason}` : ` (code ${code})`}`;
}

/**
 * Whether an ending is good news, bad news or neither, for the status line's colour: a
 * command that exited 0 is good; one the user closed or interrupted is neither.
 * @param {Ending} e
 * @returns {'good' | 'bad' | 'neutral'}
 */
export function toneOf(e) {
  if (e.kind === 'exited') return e.code === 0 ? 'good' : 'bad';
  return e.kind === 'closed' ? 'neutral' : 'bad';
}

/**
 * Why an exec socket failed before opening: the browser only sees a failed socket, so the
 * page asks the same URL without an upgrade and shows the `Status` message it answers.
 * @param {string} url
 */
export async function refusalReason(url) {
  try {
    const res = await fetch(url, { headers: { Accept: 'application/json' } });
    const body = await res.text();
    let status = null;
    try {
      status = JSON.parse(body);
    } catch {
      /* not JSON */
    }
    if (status?.message) return status.message;
    if (!res.ok) return `HTTP ${res.status} ${res.statusText}`.trim();
    return 'the connection failed';
  } catch {
    return 'the gateway cannot be reached';
  }
}
