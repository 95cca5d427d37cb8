// resume: SESSIONS page sessions (the resume subprotocol, as the page opens them) into echo-0 on
// replica A, opened evenly over RAMP seconds. Each one:
//   1. sends LINES numbered lines and waits for their echo (attached, until DROP_AT);
//   2. at DROP_AT (the same instant for all: one network blip) sends LINES more lines and at
//      once goes away (close 1001, as a browser leaving a page): podterm keeps the session;
//   3. stays away DETACHED seconds, then resumes through replica B (which relays to A) from
//      the output offset it had received, spread over RESUME_SPREAD seconds (the page's
//      reconnect jitter), sends again whatever stdin B says A did not receive, sends LINES more
//      lines and stdin EOF;
//   4. checks that its output is every line exactly once, in order.
//
// Metrics: resume_ms (resume request -> its control message, which says the session is back),
// open_ms (a new session's request -> its first control message: the baseline of the same
// run), lost_bytes and duplicated_bytes (output lines missing or repeated after the resume),
// sessions_ok, session_errors{reason}. Thresholds fail the run on any error or any lost or
// duplicated byte, never on speed.
//
// k6 1.1 drops messages that arrive before a socket's open event has run (lib/exec.js), and
// podterm's first message on a page session is its control message. A socket whose control
// message does not come within CONTROL_WAIT_MS of its open is therefore given up, as the page
// gives up a dead connection: a first open is closed normally and opened again, a resume goes
// away (1001) and resumes again from the output received; output before the control message
// is not taken (it is sent again after the next one). k6_retries counts these.
//
// Configuration (k6 -e, set by loadtest/run): EXEC_BASE (replica A's pods URL), RESUME_BASE
// (replica B's ws://host:port), HEADERS, T0 (ms since the epoch when the ramp starts: the
// runner samples memory in the attached and the detached windows from it), SESSIONS, RAMP,
// HOLD (seconds attached after the ramp), DETACHED (seconds away), RESUME_SPREAD, LINES.
import { WebSocket } from 'k6/experimental/websockets';
import { Counter, Trend } from 'k6/metrics';
import {
  CONTROL,
  ERROR,
  RESUME_V5,
  STDIN,
  STDIN_EOF,
  STDOUT,
  TARGET,
  ackFrame,
  control,
  envInt,
  execUrl,
  exitCode,
  parseFrame,
} from './lib/exec.js';

export { handleSummary } from './lib/exec.js';

const SESSIONS = envInt('SESSIONS', 1000);
const RAMP_S = envInt('RAMP', 5);
const HOLD_S = envInt('HOLD', 3);
const DETACHED_S = envInt('DETACHED', 4);
const RESUME_SPREAD_S = envInt('RESUME_SPREAD', RAMP_S);
const LINES = envInt('LINES', 20);
const SESSIONS_PER_VU = envInt('SESSIONS_PER_VU', 100);
const VUS = Math.ceil(SESSIONS / SESSIONS_PER_VU);
const RESUME_BASE = __ENV.RESUME_BASE;
const HEADERS = JSON.parse(__ENV.HEADERS || '{}');
const T0 = envInt('T0', Date.now() + 2000);
const DROP_AT = T0 + (RAMP_S + HOLD_S) * 1000;
const RESUME_AT = DROP_AT + DETACHED_S * 1000;
// How long a session may take, after it resumed, to finish before it counts as stuck.
const FINISH_MS = 30000;
const CONTROL_WAIT_MS = 1000;

const resumeMs = new Trend('resume_ms', true);
const openMs = new Trend('open_ms', true);
const lostBytes = new Counter('lost_bytes');
const duplicatedBytes = new Counter('duplicated_bytes');
const sessionsOk = new Counter('sessions_ok');
const sessionErrors = new Counter('session_errors');
const resumed = new Counter('sessions_resumed');
const retries = new Counter('k6_retries');
// Error events after the exit status: k6 1.1's "close sent" race (lib/exec.js), not failed on.
const errorsAfterClose = new Counter('errors_after_close');

export const options = {
  insecureSkipTLSVerify: true,
  scenarios: {
    resume: {
      executor: 'per-vu-iterations',
      vus: VUS,
      iterations: 1,
      maxDuration: `${RAMP_S + HOLD_S + DETACHED_S + RESUME_SPREAD_S + FINISH_MS / 1000 + 30}s`,
      gracefulStop: '0s',
    },
  },
  thresholds: {
    session_errors: ['count==0'],
    sessions_ok: [`count>=${SESSIONS}`],
    sessions_resumed: [`count>=${SESSIONS}`],
    lost_bytes: ['count==0'],
    duplicated_bytes: ['count==0'],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'max', 'count'],
};

export default function () {
  const vu = __VU - 1;
  for (let index = vu; index < SESSIONS; index += VUS) {
    const openAt = T0 + (index * RAMP_S * 1000) / SESSIONS;
    const resumeAt = RESUME_AT + (index * RESUME_SPREAD_S * 1000) / SESSIONS;
    setTimeout(() => session(index, resumeAt), Math.max(0, openAt - Date.now()));
  }
}

const encoder = (text) => {
  const bytes = new Uint8Array(text.length + 1);
  bytes[0] = STDIN;
  for (let i = 0; i < text.length; i += 1) bytes[i + 1] = text.charCodeAt(i);
  return bytes;
};

function session(index, resumeAt) {
  const line = (n) => `s${index}-${n}\n`;
  let expected = '';
  let output = '';
  // Stdin sent, as frames with the byte count at their end: what a resume may have to resend.
  const sent = [];
  let sentBytes = 0;
  let ctl = null;
  let exit = null;
  let failed = false;
  let done = false;
  let ws = null;
  let stuck = null;
  let resumeTimer = null;
  let dropTimer = null;
  // Whether the last lines and stdin EOF went out (a resume retried sends them once).
  let finished = false;

  const fail = (reason) => {
    if (failed || done) return;
    failed = true;
    for (const t of [stuck, resumeTimer, dropTimer]) if (t !== null) clearTimeout(t);
    sessionErrors.add(1, { reason, target: TARGET });
    console.warn(`session ${index} failed: ${reason}`);
    if (ws) ws.close();
  };
  const send = (text) => {
    const frame = encoder(text);
    sentBytes += text.length;
    sent.push({ end: sentBytes, frame });
    expected += text;
    ws.send(frame.buffer);
  };
  const sendLines = (from) => {
    for (let n = from; n < from + LINES; n += 1) send(line(n));
  };
  /** Resends the stdin after byte `from` (what the replica says it has not received). */
  const resendFrom = (from) => {
    for (const e of sent) {
      if (e.end <= from) continue;
      const skip = Math.max(0, from - (e.end - (e.frame.length - 1)));
      if (skip === 0) {
        ws.send(e.frame.buffer);
        continue;
      }
      const rest = new Uint8Array(e.frame.length - skip);
      rest[0] = STDIN;
      rest.set(e.frame.subarray(1 + skip), 1);
      ws.send(rest.buffer);
    }
  };
  /** Output lines missing or repeated: counted as lost and duplicated bytes. */
  const compare = () => {
    const want = new Map();
    for (const l of expected.split('\n').filter((x) => x)) want.set(l, (want.get(l) || 0) + 1);
    const got = new Map();
    for (const l of output.split('\n').filter((x) => x)) got.set(l, (got.get(l) || 0) + 1);
    let lost = 0;
    let dup = 0;
    for (const [l, n] of want) lost += Math.max(0, n - (got.get(l) || 0)) * (l.length + 1);
    for (const [l, n] of got) dup += Math.max(0, n - (want.get(l) || 0)) * (l.length + 1);
    if (lost) lostBytes.add(lost, { target: TARGET });
    if (dup) duplicatedBytes.add(dup, { target: TARGET });
    if (!lost && !dup && output !== expected) return 'reordered';
    return lost || dup ? 'lost or duplicated output' : null;
  };

  /**
   * A socket to `url`; `onControl(control, ms)` once its first control message came, `ms`
   * after `started`; `onLost()` when that did not come in time (k6 dropped it).
   */
  const connect = (url, onControl, started, onLost) => {
    const socket = new WebSocket(url, [RESUME_V5], { headers: HEADERS, tags: { target: TARGET } });
    socket.binaryType = 'arraybuffer';
    let first = true;
    let wait = null;
    socket.onopen = () => {
      if (socket.protocol !== RESUME_V5) return fail(`subprotocol ${socket.protocol}`);
      wait = setTimeout(() => {
        if (socket !== ws || !first) return;
        retries.add(1);
        ws = null;
        onLost(socket);
      }, CONTROL_WAIT_MS);
    };
    socket.onmessage = (event) => {
      if (socket !== ws) return;
      const { channel, payload } = parseFrame(event.data);
      if (channel === STDOUT) {
        if (first) return; // before the control message: sent again after the next one
        output += String.fromCharCode.apply(null, payload);
        socket.send(ackFrame(output.length));
      } else if (channel === CONTROL) {
        const c = control(payload);
        if (c === null) return fail('control');
        ctl = c;
        if (first) {
          first = false;
          if (wait !== null) clearTimeout(wait);
          onControl(c, event.timestamp - started);
        }
      } else if (channel === ERROR) {
        exit = exitCode(payload);
        if (exit !== 0) fail('exit');
      }
    };
    socket.onerror = (event) => {
      if (socket !== ws || done || exit === 0) return errorsAfterClose.add(1, { target: TARGET });
      fail(`error: ${event.error}`);
    };
    socket.onclose = () => {
      if (socket !== ws || failed) return;
      if (exit !== 0) return fail('closed before exit');
      clearTimeout(stuck);
      const problem = compare();
      if (problem) return fail(problem);
      done = true;
      sessionsOk.add(1);
    };
    return socket;
  };

  // 1. Open on A, send lines, wait for their echo.
  const open = () => {
    const opened = Date.now();
    ws = connect(execUrl('echo-0', ['cat'], { stdin: true }), opening, opened, (lost) => {
      lost.close(1000);
      open();
    });
  };
  const opening = (c, ms) => {
    if (!c.proof) return fail('no proof');
    openMs.add(ms, { target: TARGET });
    sendLines(0);
    // 2. At DROP_AT: more lines, then away at once.
    dropTimer = setTimeout(() => {
      dropTimer = null;
      if (output !== expected) return fail('echo missing before the drop');
      sendLines(LINES);
      const away = ws;
      ws = null;
      away.close(1001);
      resumeTimer = setTimeout(resume, Math.max(0, resumeAt - Date.now()));
    }, Math.max(0, DROP_AT - Date.now()));
  };
  open();
  // Whatever happens, a session that has not ended by then has failed.
  stuck = setTimeout(() => fail('stuck'), Math.max(0, resumeAt - Date.now()) + FINISH_MS);

  // 3. Back through B, from the output received.
  const resume = () => {
    resumeTimer = null;
    const c = ctl;
    const q = `proof=${encodeURIComponent(c.proof)}&output=${output.length}`;
    const url = `${RESUME_BASE}/api/sessions/${encodeURIComponent(c.session)}/resume?${q}`;
    const started = Date.now();
    ws = connect(url, (back, ms) => {
      resumeMs.add(ms, { target: TARGET });
      resumed.add(1);
      if (back.output < output.length) return fail('resumed behind what was received');
      resendFrom(back.input);
      if (!finished) {
        finished = true;
        sendLines(2 * LINES);
      }
      // (Again after a retried resume: the lost socket may not have carried it.)
      ws.send(STDIN_EOF);
    }, started, (lost) => {
      lost.close(1001);
      resume();
    });
  };
}
