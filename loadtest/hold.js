// hold: SESSIONS concurrent interactive sessions into echo-0, opened evenly over RAMP seconds and
// held DURATION seconds more, each typing one keystroke a second and timing its echo.
//
// Metrics: echo_ms (keystroke -> echo, sent after the ramp), echo_ramp_ms (sent during the
// ramp), sessions_ok, session_errors{reason}. Thresholds fail the run on any error, never on speed.
import { Counter, Trend } from 'k6/metrics';
import { STDIN, STDIN_EOF, TARGET, envInt, execSession, execUrl, frame } from './lib/exec.js';

export { handleSummary } from './lib/exec.js';

const SESSIONS = envInt('SESSIONS', 200);
const RAMP_S = envInt('RAMP', 10);
const DURATION_S = envInt('DURATION', 10);
// k6/experimental/websockets runs one event loop per VU that can hold many sockets: far fewer VUs (each a
// JavaScript runtime) than sessions keeps k6's own memory and CPU down.
const SESSIONS_PER_VU = envInt('SESSIONS_PER_VU', 100);
const VUS = Math.ceil(SESSIONS / SESSIONS_PER_VU);
const KEYSTROKE_MS = 1000;
// How long after the hold a session may take to exit and close before it counts as stuck.
const CLOSE_GRACE_MS = 30000;

const echoMs = new Trend('echo_ms', true);
const echoRampMs = new Trend('echo_ramp_ms', true);
const keystrokes = new Counter('keystrokes');

export const options = {
  insecureSkipTLSVerify: true,
  scenarios: {
    hold: {
      executor: 'per-vu-iterations',
      vus: VUS,
      iterations: 1,
      maxDuration: `${RAMP_S + DURATION_S + CLOSE_GRACE_MS / 1000 + 30}s`,
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
  // One clock for every VU: sessions open at evenly spaced offsets from t0.
  return { t0: Date.now() + 1000 };
}

export default function (data) {
  const vu = __VU - 1;
  for (let index = vu; index < SESSIONS; index += VUS) {
    const openAt = data.t0 + (index * RAMP_S * 1000) / SESSIONS;
    // Each session types at its own offset into the second, spread evenly, as independent
    // users do. Typing from the moment each opened would bunch them: the default ramp opens
    // 300 a second, so sessions i and i + 300 open a whole second apart and would type at
    // the same instant.
    const phase = (index * KEYSTROKE_MS) / SESSIONS;
    setTimeout(() => session(data.t0, phase), Math.max(0, openAt - Date.now()));
  }
}

function session(t0, phase) {
  const rampEnd = t0 + RAMP_S * 1000;
  const holdEnd = rampEnd + DURATION_S * 1000;
  const pending = []; // [sentAt, byte] per keystroke not yet echoed, oldest first
  let next = 0;
  let typing = null;
  let stopping = null;

  const type = () => {
    const byte = 97 + (next++ % 26); // a..z, so a lost or reordered echo is seen
    pending.push([Date.now(), byte]);
    keystrokes.add(1);
    s.send(frame(STDIN, [byte]));
  };
  // The next keystroke at t0 + phase + n seconds, strictly after now: a late one leaves the
  // next where it was (a user's next keystroke does not wait for a slow echo), where
  // setInterval's drift would move late sessions later and pile them up at one instant.
  const schedule = () => {
    const now = Date.now();
    const n = Math.floor((now - t0 - phase) / KEYSTROKE_MS) + 1;
    typing = setTimeout(() => {
      type();
      schedule();
    }, t0 + phase + n * KEYSTROKE_MS - now);
  };
  const s = execSession(execUrl('echo-0', ['cat'], { stdin: true }), {
    open: () => {
      schedule();
      stopping = setTimeout(() => {
        clearTimeout(typing);
        typing = null;
        s.send(STDIN_EOF);
      }, Math.max(0, holdEnd - Date.now()));
      s.stuckIn(Math.max(0, holdEnd + CLOSE_GRACE_MS - Date.now()));
    },
    stdout: (payload, event) => {
      // The event's timestamp is taken when k6 read the frame (sub-millisecond), so the
      // JavaScript event loop's lag is not counted; Date.now() at send is whole milliseconds.
      const now = event.timestamp;
      for (const byte of payload) {
        const sent = pending.shift();
        if (sent === undefined || sent[1] !== byte) return s.fail('echo');
        (sent[0] >= rampEnd ? echoMs : echoRampMs).add(now - sent[0], { target: TARGET });
      }
    },
    check: () => (pending.length > 0 ? 'echo missing' : null),
    stop: () => {
      for (const timer of [typing, stopping]) if (timer !== null) clearTimeout(timer);
      typing = stopping = null;
    },
  });
}
