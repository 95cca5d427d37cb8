// churn: SESSIONS concurrent loops for DURATION seconds, each opening a session into echo-0,
// typing one byte, waiting for its echo, sending stdin EOF and waiting for the exit status and
// the close, then opening the next at once: new sessions per second and how long setup takes.
//
// Metrics: handshake_ms (new socket -> upgraded), setup_ms (new socket -> first echo, the session
// usable end to end), session_ms (new socket -> closed after exit 0), sessions_ok,
// sessions_in_window (closed before the deadline), session_errors{reason}.
import { Counter, Trend } from 'k6/metrics';
import {
  CLOSE, ERROR, STDIN, STDIN_EOF, STDOUT, SUBPROTOCOL, TARGET,
  envInt, execUrl, exitCode, frame, openExec, parseFrame,
} from './lib/exec.js';

const LOOPS = envInt('SESSIONS', 50);
const DURATION_S = envInt('DURATION', 10);
const LOOPS_PER_VU = envInt('SESSIONS_PER_VU', 10);
const VUS = Math.ceil(LOOPS / LOOPS_PER_VU);
// How long one session may take before it counts as stuck.
const SESSION_TIMEOUT_MS = 30000;
const PROBE = 120; // 'x'

const handshakeMs = new Trend('handshake_ms', true);
const setupMs = new Trend('setup_ms', true);
const sessionMs = new Trend('session_ms', true);
const sessionsOk = new Counter('sessions_ok');
const sessionsInWindow = new Counter('sessions_in_window');
const sessionErrors = new Counter('session_errors');
// Error events after a session ended well: k6 1.1 answers a ping that raced the close frame
// after it sent its own close ("websocket: close sent"); reported, not failed on.
const errorsAfterClose = new Counter('errors_after_close');

export const options = {
  insecureSkipTLSVerify: true,
  scenarios: {
    churn: {
      executor: 'per-vu-iterations',
      vus: VUS,
      iterations: 1,
      maxDuration: `${DURATION_S + SESSION_TIMEOUT_MS / 1000 + 30}s`,
      gracefulStop: '0s',
    },
  },
  thresholds: {
    session_errors: ['count==0'],
    sessions_ok: ['count>0'],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'max', 'count'],
};

export function setup() {
  return { t0: Date.now() + 1000 };
}

export default function (data) {
  const deadline = data.t0 + DURATION_S * 1000;
  const vu = __VU - 1;
  for (let loop = vu; loop < LOOPS; loop += VUS) {
    setTimeout(() => session(deadline), Math.max(0, data.t0 - Date.now()));
  }
}

/** One session; when it ends well and the deadline has not passed, the next one starts. */
function session(deadline) {
  const started = Date.now();
  const ws = openExec(execUrl('echo-0', ['cat'], { stdin: true }));
  let echoed = false;
  let exit = null;
  let failed = false;
  let done = false;
  const stuck = setTimeout(() => fail('stuck'), SESSION_TIMEOUT_MS);

  const fail = (reason) => {
    if (failed) return;
    failed = true;
    clearTimeout(stuck);
    sessionErrors.add(1, { reason, target: TARGET });
    console.warn(`${TARGET} session failed: ${reason}`);
    ws.close();
  };

  ws.onopen = (event) => {
    handshakeMs.add(event.timestamp - started, { target: TARGET });
    if (ws.protocol !== SUBPROTOCOL) return fail('subprotocol');
    ws.send(frame(STDIN, [PROBE]));
  };
  ws.onmessage = (event) => {
    const { channel, payload } = parseFrame(event.data);
    if (channel === STDOUT) {
      if (echoed || payload.length !== 1 || payload[0] !== PROBE) return fail('echo');
      echoed = true;
      setupMs.add(event.timestamp - started, { target: TARGET });
      ws.send(STDIN_EOF);
    } else if (channel === ERROR) {
      exit = exitCode(payload);
      if (exit !== 0) fail('exit');
    } else if (channel !== CLOSE && payload.length > 0) {
      fail(`channel ${channel}`);
    }
  };
  ws.onerror = (event) => {
    if (done) return errorsAfterClose.add(1, { target: TARGET });
    fail(`error: ${event.error}`);
  };
  ws.onclose = (event) => {
    if (failed) return;
    clearTimeout(stuck);
    if (exit !== 0) return fail('closed before exit');
    if (!echoed) return fail('echo missing');
    sessionMs.add(event.timestamp - started, { target: TARGET });
    done = true;
    sessionsOk.add(1);
    if (event.timestamp <= deadline) {
      sessionsInWindow.add(1);
      session(deadline);
    }
  };
}

export function handleSummary(data) {
  return { [__ENV.SUMMARY_OUT || 'summary.json']: JSON.stringify(data, null, 1) };
}
