// Unit tests: ExecSession's ordering (size first, then what was typed while connecting), exit
// status, drops and refusals, over a scripted stand-in for the browser's WebSocket.
import { afterEach, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACK,
  ACK_EVERY,
  ExecSession,
  PROTOCOLS,
  RESIZE,
  STDIN,
  CONTROL,
  SUBPROTOCOL_FLOW_V5,
  SUBPROTOCOL_RESUME_V4,
  SUBPROTOCOL_RESUME_V5,
  SUBPROTOCOL_V4,
  describe,
  isTerminalReport,
  SUBPROTOCOL_V5,
  stdinFrame,
} from '../page/exec.js';

class FakeSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;
  /** @type {FakeSocket[]} */
  static made = [];

  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = FakeSocket.CONNECTING;
    this.protocol = '';
    /** @type {Uint8Array[]} */
    this.sent = [];
    FakeSocket.made.push(this);
  }

  send(frame) {
    assert.equal(this.readyState, FakeSocket.OPEN, 'sent only once open');
    this.sent.push(frame);
  }

  close(code, reason) {
    this.closedWith = { code, reason };
    this.readyState = FakeSocket.CLOSED;
  }

  // The server's side.
  open(protocol = SUBPROTOCOL_V5) {
    this.readyState = FakeSocket.OPEN;
    this.protocol = protocol;
    this.onopen();
  }

  receive(bytes) {
    const copy = new Uint8Array(bytes);
    this.onmessage({ data: copy.buffer });
  }

  drop(code, reason) {
    this.readyState = FakeSocket.CLOSED;
    return this.onclose({ code, reason });
  }
}

const decode = (b) => new TextDecoder().decode(b);
let realWebSocket;
let realFetch;

beforeEach(() => {
  realWebSocket = globalThis.WebSocket;
  realFetch = globalThis.fetch;
  globalThis.WebSocket = FakeSocket;
  FakeSocket.made = [];
});

afterEach(() => {
  globalThis.WebSocket = realWebSocket;
  globalThis.fetch = realFetch;
});

function session(extra = {}) {
  const events = { output: [], ends: [], opened: 0 };
  const s = new ExecSession({
    url: 'ws://h/exec',
    dryRunUrl: 'http://h/exec',
    size: () => ({ cols: 100, rows: 30 }),
    onOpen: () => {
      events.opened += 1;
    },
    onOutput: (channel, bytes) => events.output.push([channel, decode(bytes)]),
    onEnd: (e) => events.ends.push(e),
    ...extra,
  });
  return { s, ws: FakeSocket.made.at(-1), events };
}

test('offers flow control, then v5 and v4; the size goes first, then what was typed while connecting', () => {
  const { s, ws, events } = session();
  assert.deepEqual(ws.protocols, PROTOCOLS);
  assert.deepEqual(PROTOCOLS.slice(0, 2), [SUBPROTOCOL_RESUME_V5, SUBPROTOCOL_RESUME_V4]);
  assert.deepEqual(PROTOCOLS.slice(4), [SUBPROTOCOL_V5, SUBPROTOCOL_V4]);
  s.send(stdinFrame('l'));
  s.send(stdinFrame('s\r'));
  s.resize(120, 40); // while connecting: dropped, the open sends the size of that moment
  assert.equal(ws.sent.length, 0);
  ws.open();
  assert.equal(events.opened, 1);
  assert.deepEqual(
    ws.sent.map((f) => [f[0], decode(f.subarray(1))]),
    [
      [RESIZE, '{"Width":100,"Height":30}'],
      [STDIN, 'l'],
      [STDIN, 's\r'],
    ],
  );
  s.send(stdinFrame('x'));
  s.resize(80, 24);
  assert.deepEqual(ws.sent.slice(3).map((f) => f[0]), [STDIN, RESIZE]);
});

test('output passes through as bytes; empty and unknown frames are ignored', () => {
  const { ws, events } = session();
  ws.open();
  ws.receive([1, 0xe2, 0x82]);
  ws.receive([1]);
  ws.receive([]);
  ws.receive([2, 0x21]);
  ws.receive([7, 0x21]);
  assert.deepEqual(events.output.map(([c]) => c), [1, 2]);
});

test('an exit status then a close is "exited with code N"', async () => {
  const { ws, events } = session();
  ws.open();
  const status = {
    status: 'Failure',
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: '3' }] },
  };
  ws.receive([3, ...new TextEncoder().encode(JSON.stringify(status))]);
  await ws.drop(1000, '');
  assert.deepEqual(events.ends, [{ kind: 'exited', code: 3 }]);
});

test('a close without an exit status is a lost connection with its reason', async () => {
  const { ws, events } = session();
  ws.open();
  await ws.drop(1001, 'podterm is shutting down');
  await ws.drop(1006, ''); // a second close is ignored
  assert.deepEqual(events.ends, [{ kind: 'lost', code: 1001, reason: 'podterm is shutting down' }]);
});

test('a socket refused before opening asks the same URL for the Status', async () => {
  const asked = [];
  globalThis.fetch = async (url) => {
    asked.push(url);
    return new Response(JSON.stringify({ kind: 'Status', message: 'restricted by rule "r1": no' }), {
      status: 403,
    });
  };
  const { s, ws, events } = session();
  s.send(stdinFrame('typed'));
  await ws.drop(1006, '');
  assert.deepEqual(asked, ['http://h/exec']);
  assert.deepEqual(events.ends, [{ kind: 'refused', message: 'restricted by rule "r1": no' }]);
  s.send(stdinFrame('after the end')); // dropped, no throw
});

test('closing from the page sends stdin EOF under v5 and ends once', () => {
  const { s, ws, events } = session();
  ws.open();
  s.close('tab closed');
  assert.deepEqual([...ws.sent.at(-1)], [255, 0]);
  assert.deepEqual(ws.closedWith, { code: 1000, reason: 'tab closed' });
  assert.deepEqual(events.ends, [{ kind: 'closed', reason: 'tab closed' }]);
});

/** The counts of the ack frames `ws` sent. */
const acks = (ws) =>
  ws.sent.filter((f) => f[0] === ACK).map((f) => Number(new DataView(f.buffer, f.byteOffset).getBigUint64(1)));

test('with flow control, what the terminal has processed is acked: when caught up, and every ACK_EVERY bytes', () => {
  const waiting = [];
  const { s, ws } = session({ onOutput: (_c, bytes, done) => waiting.push([bytes.length, done]) });
  ws.open(SUBPROTOCOL_FLOW_V5);
  assert.equal(s.flow, true);
  ws.receive([1, ...new Uint8Array(100)]);
  ws.receive([2, ...new Uint8Array(50)]);
  assert.deepEqual(acks(ws), [], 'nothing processed yet');
  waiting.shift()[1]();
  assert.deepEqual(acks(ws), [], 'one output still waits and 100 bytes is under the step');
  waiting.shift()[1]();
  assert.deepEqual(acks(ws), [150], 'caught up: everything is acked');
  // A flood the terminal keeps up with only slowly: an ack every ACK_EVERY bytes processed.
  const per = ACK_EVERY / 8192;
  for (let i = 0; i < 5 * per; i += 1) ws.receive([1, ...new Uint8Array(8192)]);
  for (let i = 0; i < 5 * per - 1; i += 1) waiting.shift()[1]();
  assert.deepEqual(acks(ws), [150, ...[1, 2, 3, 4].map((k) => 150 + k * per * 8192)]);
  const last = waiting.shift()[1];
  last();
  last(); // a second call counts nothing
  assert.deepEqual(acks(ws).at(-1), 150 + 5 * per * 8192);
  s.close('tab closed');
  assert.deepEqual([...ws.sent.at(-1)], [255, 0], 'the flow variant of v5 has the close channel');
});

test('without flow control nothing is acked', () => {
  const { ws } = session({ onOutput: (_c, _b, done) => done() });
  ws.open(SUBPROTOCOL_V5);
  ws.receive([1, ...new Uint8Array(200_000)]);
  assert.deepEqual(acks(ws), []);
});

/** A control frame (src/protocol/resume.rs). */
function control(c) {
  const json = new TextEncoder().encode(JSON.stringify(c));
  return Uint8Array.of(CONTROL, ...json);
}

test('a dropped resumable session reconnects from the bytes it had, and each key goes once', async () => {
  globalThis.document = { baseURI: 'http://h/' };
  const states = [];
  const { s, ws } = session({ onReconnecting: (n) => states.push(n), onOutput: (_c, _b, done) => done() });
  ws.open(SUBPROTOCOL_RESUME_V5);
  s.send(stdinFrame('ab'));
  assert.equal(ws.sent.length, 1, 'only the size: keys wait for the first control message');
  ws.receive(control({ session: 's1', proof: 'p', grace: 300, input: 0, output: 0, watchers: [] }));
  assert.deepEqual(ws.sent.slice(1).map((f) => decode(f.subarray(1))), ['ab']);
  ws.receive(Uint8Array.of(1, ...new TextEncoder().encode('hello')));
  s.send(stdinFrame('cd'));
  await ws.drop(1006, '');
  assert.equal(s.ended, false, 'a drop is not the end');
  assert.deepEqual(states, [1]);
  s.send(stdinFrame('ef')); // typed while reconnecting
  await new Promise((r) => setTimeout(r, 5));
  const again = FakeSocket.made.at(-1);
  assert.notEqual(again, ws);
  assert.equal(again.url, 'ws://h/api/sessions/s1/resume?proof=p&output=5');
  again.open(SUBPROTOCOL_RESUME_V5);
  // The gateway had "ab" and the first byte of "cd": the rest goes again, once.
  again.receive(control({ session: 's1', proof: 'p', grace: 300, input: 3, output: 9, watchers: ['carol'] }));
  assert.deepEqual(again.sent.slice(1).map((f) => decode(f.subarray(1))), ['d', 'ef']);
  assert.equal(s.replaying, true, 'output up to 9 is a replay');
  again.receive(Uint8Array.of(1, ...new TextEncoder().encode('abcd')));
  assert.equal(s.replaying, false);
  assert.deepEqual(s.resumable, { session: 's1', proof: 'p', output: 9, grace: 300 });
  delete globalThis.document;
});

test('a refused resume ends the session with the gateway\'s words', async () => {
  globalThis.document = { baseURI: 'http://h/' };
  globalThis.fetch = async () => ({
    ok: false,
    status: 404,
    statusText: 'Not Found',
    text: async () => JSON.stringify({ message: 'session s1 is not running any more' }),
  });
  const { s, ws, events } = session();
  ws.open(SUBPROTOCOL_RESUME_V5);
  ws.receive(control({ session: 's1', proof: 'p', grace: 300, input: 0, output: 0, watchers: [] }));
  await ws.drop(1006, '');
  await new Promise((r) => setTimeout(r, 5));
  await FakeSocket.made.at(-1).drop(1006, '');
  assert.equal(s.ended, true);
  assert.equal(events.ends[0].kind, 'gone');
  assert.match(events.ends[0].message, /not running any more/);
  assert.match(describe(events.ends[0]), /^session s1 is not running any more/);
  delete globalThis.document;
});

test('terminal reports are told from keys', () => {
  for (const report of ['\x1b[?1;2c', '\x1b[>0;276;0c', '\x1b[12;40R', '\x1b[0n', '\x1b]11;rgb:0000/0000/0000\x07']) {
    assert.equal(isTerminalReport(report), true, JSON.stringify(report));
  }
  for (const key of ['a', '\r', '\x1b[A', '\x1b[1;5C', '\x03', '\x1b']) {
    assert.equal(isTerminalReport(key), false, JSON.stringify(key));
  }
});
