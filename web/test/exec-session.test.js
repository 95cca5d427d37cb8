// Unit tests: ExecSession's ordering (size first, then what was typed while connecting), exit
// status, drops and refusals, over a scripted stand-in for the browser's WebSocket.
import { afterEach, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { ExecSession, RESIZE, STDIN, SUBPROTOCOL_V4, SUBPROTOCOL_V5, stdinFrame } from '../page/exec.js';

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

test('offers v5 then v4; the size goes first, then what was typed while connecting', () => {
  const { s, ws, events } = session();
  assert.deepEqual(ws.protocols, [SUBPROTOCOL_V5, SUBPROTOCOL_V4]);
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
  assert.deepEqual(events.ends, [{ kind: 'lost', code: 1000, reason: 'tab closed' }]);
});
