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
import { STDIN_EOF, TARGET, envInt, execSession, execUrl } from './lib/exec.js';

export { handleSummary } from './lib/exec.js';

const SESSIONS = envInt('SESSIONS', 1);
const BYTES = envInt('BYTES', 256 * 1024 * 1024);
const SESSIONS_PER_VU = envInt('SESSIONS_PER_VU', 10);
const VUS = Math.ceil(SESSIONS / SESSIONS_PER_VU);
const SESSION_TIMEOUT_MS = envInt('TIMEOUT', 300) * 1000;

const bulkBytes = new Counter('bulk_bytes');
const streamMs = new Trend('stream_ms', true);
const wallMs = new Trend('wall_ms', true);

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
  let received = 0;
  const s = execSession(execUrl('flood-0', [String(BYTES)], { stdin: true }), {
    // The go: every frame from here on arrives while the socket is OPEN.
    open: () => s.send(STDIN_EOF),
    stdout: (payload) => {
      received += payload.length;
    },
    check: () => (received !== BYTES ? `received ${received} of ${BYTES} bytes` : null),
    ok: (event) => {
      bulkBytes.add(received, { target: TARGET });
      streamMs.add(event.timestamp - started, { target: TARGET });
      wallMs.add(event.timestamp - t0, { target: TARGET });
    },
  });
  s.stuckIn(SESSION_TIMEOUT_MS);
}
