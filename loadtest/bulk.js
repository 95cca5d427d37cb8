// bulk: SESSIONS sessions into flood-0 started together, each streaming BYTES bytes of stdout
// and exiting 0: throughput through one session (SESSIONS=1) and through many.
//
// The flood starts only when the open event has fired: k6 1.1's experimental WebSocket starts
// reading the socket before it queues its open event, and drops every message event that runs
// while the socket is not yet OPEN, silently (`queueMessage`, "if w.readyState != OPEN return
// nil"). A flood that starts at the upgrade so lost its first frames when k6 was short of CPU.
// So the session asks for stdin and sends stdin EOF from onopen; flood-0 with stdin reads it
// to EOF before writing (as `cat >/dev/null; head -c N`).
//
// Metrics: bulk_bytes (stdout bytes received), stream_ms (new socket -> closed, per session),
// wall_ms (t0 -> closed; its max is the run's wall time), sessions_ok, session_errors{reason}.
import { Counter, Trend } from 'k6/metrics';
import {
  CLOSE, ERROR, STDIN_EOF, STDOUT, SUBPROTOCOL, TARGET,
  envInt, execUrl, exitCode, openExec, parseFrame,
} from './lib/exec.js';

const SESSIONS = envInt('SESSIONS', 1);
const BYTES = envInt('BYTES', 256 * 1024 * 1024);
const SESSIONS_PER_VU = envInt('SESSIONS_PER_VU', 10);
const VUS = Math.ceil(SESSIONS / SESSIONS_PER_VU);
const SESSION_TIMEOUT_MS = envInt('TIMEOUT', 300) * 1000;

const bulkBytes = new Counter('bulk_bytes');
const streamMs = new Trend('stream_ms', true);
const wallMs = new Trend('wall_ms', true);
const sessionsOk = new Counter('sessions_ok');
const sessionErrors = new Counter('session_errors');
// Error events after a session ended well: k6 1.1 answers a ping that raced the close frame
// after it sent its own close ("websocket: close sent"); reported, not failed on.
const errorsAfterClose = new Counter('errors_after_close');

export const options = {
  insecureSkipTLSVerify: true,
  scenarios: {
    bulk: {
      executor: 'per-vu-iterations',
      vus: VUS,
      iterations: 1,
      maxDuration: `${SESSION_TIMEOUT_MS / 1000 + 30}s`,
      gracefulStop: '0s',
    },
  },
  thresholds: {
    session_errors: ['count==0'],
    sessions_ok: [`count>=${SESSIONS}`],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'max', 'count'],
};

export function setup() {
  return { t0: Date.now() + 1000 };
}

export default function (data) {
  for (let index = __VU - 1; index < SESSIONS; index += VUS) {
    setTimeout(() => session(data.t0), Math.max(0, data.t0 - Date.now()));
  }
}

function session(t0) {
  const started = Date.now();
  const ws = openExec(execUrl('flood-0', [String(BYTES)], { stdin: true }));
  let received = 0;
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

  ws.onopen = () => {
    if (ws.protocol !== SUBPROTOCOL) return fail('subprotocol');
    ws.send(STDIN_EOF); // the go: every frame from here on arrives while the socket is OPEN
  };
  ws.onmessage = (event) => {
    const { channel, payload } = parseFrame(event.data);
    if (channel === STDOUT) {
      received += payload.length;
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
    if (received !== BYTES) return fail(`received ${received} of ${BYTES} bytes`);
    bulkBytes.add(received, { target: TARGET });
    streamMs.add(event.timestamp - started, { target: TARGET });
    wallMs.add(event.timestamp - t0, { target: TARGET });
    done = true;
    sessionsOk.add(1);
  };
}

export function handleSummary(data) {
  return { [__ENV.SUMMARY_OUT || 'summary.json']: JSON.stringify(data, null, 1) };
}
