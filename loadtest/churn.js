// churn: SESSIONS concurrent loops for DURATION seconds, each opening a session into echo-0,
// typing one byte, waiting for its echo, sending stdin EOF and waiting for the exit status and
// the close, then opening the next at once (or, with RATE, at its slot): new sessions per
// second and how long setup takes.
//
// Metrics: handshake_ms (new socket -> upgraded), setup_ms (new socket -> first echo, the session
// usable end to end), session_ms (new socket -> closed after exit 0), sessions_ok,
// sessions_in_window (closed before the deadline), session_errors{reason}.
import { Counter, Trend } from 'k6/metrics';
import { STDIN, STDIN_EOF, TARGET, envInt, execSession, execUrl, frame } from './lib/exec.js';

export { handleSummary } from './lib/exec.js';

const LOOPS = envInt('SESSIONS', 50);
const DURATION_S = envInt('DURATION', 10);
// Sessions a second in all (unset: each loop starts its next session as soon as the last
// ended).
// Loop i starts its sessions at i / RATE s, then every LOOPS / RATE s; a late session starts
// at once and does not move the next, so every leg is offered the same load.
const RATE = envInt('RATE', 0);
const LOOPS_PER_VU = envInt('SESSIONS_PER_VU', 10);
const VUS = Math.ceil(LOOPS / LOOPS_PER_VU);
// How long one session may take before it counts as stuck.
const SESSION_TIMEOUT_MS = 30000;
const PROBE = 120; // 'x'

const handshakeMs = new Trend('handshake_ms', true);
const setupMs = new Trend('setup_ms', true);
const sessionMs = new Trend('session_ms', true);
const sessionsInWindow = new Counter('sessions_in_window');

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
    const first = RATE > 0 ? data.t0 + (loop * 1000) / RATE : data.t0;
    setTimeout(() => session(deadline, first), Math.max(0, first - Date.now()));
  }
}

/**
 * One session, due at `slot`; when it ends well and the deadline has not passed, the next one
 * starts: at once, or at its own slot with RATE.
 */
function session(deadline, slot) {
  const started = Date.now();
  let echoed = false;
  const s = execSession(execUrl('echo-0', ['cat'], { stdin: true }), {
    open: (event) => {
      handshakeMs.add(event.timestamp - started, { target: TARGET });
      s.send(frame(STDIN, [PROBE]));
    },
    stdout: (payload, event) => {
      if (echoed || payload.length !== 1 || payload[0] !== PROBE) return s.fail('echo');
      echoed = true;
      setupMs.add(event.timestamp - started, { target: TARGET });
      s.send(STDIN_EOF);
    },
    check: () => (echoed ? null : 'echo missing'),
    ok: (event) => {
      sessionMs.add(event.timestamp - started, { target: TARGET });
      if (event.timestamp <= deadline) {
        sessionsInWindow.add(1);
        if (RATE > 0) {
          const next = slot + (LOOPS * 1000) / RATE;
          if (next < deadline) setTimeout(() => session(deadline, next), Math.max(0, next - Date.now()));
        } else {
          session(deadline, slot);
        }
      }
    },
  });
  s.stuckIn(SESSION_TIMEOUT_MS);
}
