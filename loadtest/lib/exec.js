// Shared by the load-test scenarios: the target, exec URLs, channel frames and session checks.
//
// Configuration (k6 `-e` variables, set by loadtest/run):
//   TARGET     "podterm", "nginx" or "direct" (a tag on every metric, the name in the results)
//   EXEC_BASE  the pods URL, e.g. ws://127.0.0.1:PORT/clusters/dev/api/v1/namespaces/default/pods
//              (through podterm) or wss://127.0.0.1:PORT/api/v1/namespaces/default/pods (direct)
//   HEADERS    JSON object of extra upgrade headers (Authorization for the dev cluster, the
//              identity headers for podterm)
//   CLIENT     "kubectl" (v5.channel.k8s.io, the default) or "page": through podterm, offer
//              what the page offers (resume, flow control, plain v5), acknowledge output as the
//              page does and take control messages; straight to the dev cluster, plain v5
// k6 1.1 ships the global-event-loop WebSocket API under its experimental name.
import { WebSocket } from 'k6/experimental/websockets';
import { Counter } from 'k6/metrics';

// The exec channel protocol (src/protocol.rs): frame = [channel byte][payload].
export const STDIN = 0;
export const STDOUT = 1;
export const STDERR = 2;
export const ERROR = 3;
export const CLOSE = 255;
export const ACK = 254;
export const CONTROL = 253;
export const SUBPROTOCOL = 'v5.channel.k8s.io';
// podterm's page protocols (src/protocol/resume.rs, src/protocol/flow.rs), most capable first.
export const RESUME_V5 = 'v5.resume.podterm.dev';
export const FLOW_V5 = 'v5.flow.podterm.dev';
export const PAGE_PROTOCOLS = [RESUME_V5, FLOW_V5, SUBPROTOCOL];

export const TARGET = __ENV.TARGET || 'direct';
export const CLIENT = __ENV.CLIENT || 'kubectl';
if (CLIENT !== 'kubectl' && CLIENT !== 'page') throw new Error(`CLIENT must be kubectl or page, got ${CLIENT}`);
/** What the sessions offer: the page's protocols only through podterm. */
export const PROTOCOLS = CLIENT === 'page' && TARGET === 'podterm' ? PAGE_PROTOCOLS : [SUBPROTOCOL];
const EXEC_BASE = __ENV.EXEC_BASE;
const HEADERS = JSON.parse(__ENV.HEADERS || '{}');

/** Reads a positive integer from the environment, or `fallback`. */
export function envInt(name, fallback) {
  const value = __ENV[name];
  if (value === undefined || value === '') return fallback;
  const n = parseInt(value, 10);
  if (!(n > 0)) throw new Error(`${name} must be a positive integer, got ${value}`);
  return n;
}

/** The exec URL for `pod` running `argv`: one `command` parameter per argv element. */
export function execUrl(pod, argv, { stdin }) {
  if (!EXEC_BASE) throw new Error('EXEC_BASE is not set (run through loadtest/run)');
  const query = argv.map((a) => `command=${encodeURIComponent(a)}`);
  query.push(`stdin=${stdin}`, 'stdout=true', 'stderr=true', 'tty=false');
  return `${EXEC_BASE}/${pod}/exec?${query.join('&')}`;
}

/**
 * Opens an exec WebSocket with the v5 subprotocol and binary frames as ArrayBuffers. k6 1.1
 * silently drops messages that arrive before the open event has run: a session must let the
 * container speak only after onopen (echo answers stdin; flood with stdin waits for its EOF).
 */
export function openExec(url, protocols = PROTOCOLS) {
  const ws = new WebSocket(url, protocols, { headers: HEADERS, tags: { target: TARGET } });
  ws.binaryType = 'arraybuffer';
  return ws;
}

/** One frame: the channel byte, then `payload` (an array of byte values). */
export function frame(channel, payload) {
  const bytes = new Uint8Array(1 + payload.length);
  bytes[0] = channel;
  bytes.set(payload, 1);
  return bytes.buffer;
}

/** v5 stdin EOF: `[255, 0]`. */
export const STDIN_EOF = frame(CLOSE, [STDIN]);

/** An ack of `count` output bytes (flow control): big-endian u64 on channel 254. */
export function ackFrame(count) {
  const bytes = new Uint8Array(9);
  bytes[0] = ACK;
  // count < 2^53: the high word, then the low word.
  const view = new DataView(bytes.buffer);
  view.setUint32(1, Math.floor(count / 2 ** 32));
  view.setUint32(5, count % 2 ** 32);
  return bytes.buffer;
}

/** A control message's JSON (channel 253), or null. */
export function control(payload) {
  try {
    return JSON.parse(String.fromCharCode.apply(null, payload));
  } catch (_) {
    return null;
  }
}

/** Splits a received message into its channel and payload. */
export function parseFrame(data) {
  const bytes = new Uint8Array(data);
  return { channel: bytes.length > 0 ? bytes[0] : -1, payload: bytes.subarray(1) };
}

/**
 * The exit code carried by an error-channel `Status`: 0 for `Success`, the `ExitCode` cause
 * for `NonZeroExitCode`, or null when the payload is not such a Status.
 */
export function exitCode(payload) {
  let status;
  try {
    status = JSON.parse(String.fromCharCode.apply(null, payload));
  } catch (_) {
    return null;
  }
  if (status.status === 'Success') return 0;
  const causes = (status.details && status.details.causes) || [];
  const cause = causes.find((c) => c.reason === 'ExitCode');
  return cause ? parseInt(cause.message, 10) : null;
}

// Every scenario's session outcome counters.
const sessionsOk = new Counter('sessions_ok');
const sessionErrors = new Counter('session_errors');
// Error events after a session ended well: k6 1.1 answers a ping that raced the close frame
// after it sent its own close ("websocket: close sent"); reported, not failed on.
const errorsAfterClose = new Counter('errors_after_close');

/**
 * One exec session into `url` with the checks every scenario makes: the v5 subprotocol, output
 * only on stdout, exit status 0 on channel 3 before the close, no error event. A failure is
 * counted once in session_errors{reason, target}, logged, and closes the socket; a good end
 * counts in sessions_ok.
 *
 * `hooks` (each optional):
 *   open(event)             the socket is open, with the right subprotocol
 *   stdout(payload, event)  a stdout frame's payload
 *   check(event)            at the close, after exit 0: a failure reason, or nothing when good
 *   ok(event)               after a good end was counted
 *   stop()                  the session is over (failed or closed): clear the scenario's timers
 *
 * Returns `{ fail(reason), stuckIn(ms), send(data) }`: `stuckIn` (re)arms the session's deadline,
 * after which it fails as "stuck".
 */
export function execSession(url, hooks) {
  const ws = openExec(url);
  let exit = null;
  let failed = false;
  let done = false;
  let stuck = null;
  // Output bytes received: acknowledged at once under the page's protocols.
  let received = 0;
  let acks = false;

  const stop = () => {
    if (stuck !== null) clearTimeout(stuck);
    stuck = null;
    if (hooks.stop) hooks.stop();
  };
  const fail = (reason) => {
    if (failed) return;
    failed = true;
    stop();
    sessionErrors.add(1, { reason, target: TARGET });
    console.warn(`${TARGET} session failed: ${reason}`);
    ws.close();
  };
  const stuckIn = (ms) => {
    if (stuck !== null) clearTimeout(stuck);
    stuck = setTimeout(() => fail('stuck'), ms);
  };

  ws.onopen = (event) => {
    if (!PROTOCOLS.includes(ws.protocol)) return fail('subprotocol');
    acks = ws.protocol !== SUBPROTOCOL;
    if (hooks.open) hooks.open(event);
  };
  ws.onmessage = (event) => {
    const { channel, payload } = parseFrame(event.data);
    if (channel === STDOUT) {
      if (acks) {
        received += payload.length;
        ws.send(ackFrame(received));
      }
      if (hooks.stdout) hooks.stdout(payload, event);
    } else if (channel === CONTROL && acks) {
      if (control(payload) === null) fail('control');
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
  // k6 1.1's close event carries no close code: a session is good when the exit status came
  // first, the scenario's check passes and no error event fired.
  ws.onclose = (event) => {
    if (failed) return;
    stop();
    if (exit !== 0) return fail('closed before exit');
    const problem = hooks.check ? hooks.check(event) : null;
    if (problem) return fail(problem);
    done = true;
    sessionsOk.add(1);
    if (hooks.ok) hooks.ok(event);
  };
  return { fail, stuckIn, send: (data) => ws.send(data) };
}

/** The end-of-test summary as JSON, to SUMMARY_OUT (set by loadtest/run). */
export function handleSummary(data) {
  return { [__ENV.SUMMARY_OUT || 'summary.json']: JSON.stringify(data, null, 1) };
}
