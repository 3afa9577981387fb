// The bring-your-own-socket API: a host that owns the sockets drives a SpiceSession through
// the recorded real QEMU run (tests/traces/real/qemu-seamless-4ch.jsonl: link, 4 channels,
// seamless migration to a second server, disconnect). The host executes every action on
// its fake sockets and feeds back what the real sockets delivered.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SpiceSession, isLivemigError } from 'livemig';
import { corpus, records, toJsonForm, inputFromJsonForm } from './corpus.js';

const real = corpus().find((t) => t.name === 'real/qemu-seamless-4ch.jsonl');

/** A host that owns the transport: one fake socket per `connect`. */
class SocketHost {
  sockets = new Map();
  events = [];
  log = [];

  execute(action) {
    this.log.push(action);
    switch (action.type) {
      case 'connect': {
        assert.ok(!this.sockets.has(action.conn), `conn ${action.conn} opened twice`);
        assert.equal(typeof action.port, 'number');
        this.sockets.set(action.conn, { action, sent: [], closed: false });
        break;
      }
      case 'transmit': {
        const s = this.sockets.get(action.conn);
        assert.ok(s && !s.closed, `transmit on conn ${action.conn}, which is not open`);
        assert.ok(action.bytes instanceof Uint8Array, 'transmit bytes are a Uint8Array');
        s.sent.push(action.bytes);
        break;
      }
      case 'close':
        this.sockets.get(action.conn).closed = true;
        break;
      case 'encrypt_ticket':
        assert.ok(action.public_key instanceof Uint8Array);
        assert.equal(typeof action.password, 'string');
        break;
      case 'check_target':
        assert.equal(typeof action.endpoint.host, 'string');
        break;
      case 'event':
        // SessionAction::Event flattens the event: { type: 'event', event: 'migrated', ... }
        assert.equal(typeof action.event, 'string');
        this.events.push(action);
        break;
      default:
        assert.fail(`unknown action ${action.type}`);
    }
  }

  /** Bytes sent on each connection, concatenated. */
  sent() {
    const out = {};
    for (const [conn, s] of this.sockets) out[conn] = Buffer.concat(s.sent).toString('base64');
    return out;
  }
}

/** Drive a session through the trace's inputs; `chunk` re-splits received bytes. */
function drive(chunk) {
  const session = new SpiceSession(real.header.setup.config);
  const host = new SocketHost();
  for (const rec of records(real.text)) {
    const input = inputFromJsonForm(rec.input);
    const pieces = input.type === 'received' ? chunk(input.bytes) : [input.bytes];
    for (const bytes of pieces) {
      const actions = session.step(rec.now, input.type === 'received' ? { ...input, bytes } : input);
      for (const a of actions) host.execute(a);
    }
    const t = session.pollTimeout();
    assert.ok(t === undefined || (Number.isSafeInteger(t) && t >= rec.now), `timeout ${t}`);
  }
  session.free();
  return host;
}

const recordedActions = records(real.text).flatMap((r) => r.actions.map((a) => JSON.stringify(a)));

test('a socket host follows the real seamless migration', () => {
  const host = drive((b) => [b]);
  assert.deepEqual(host.log.map((a) => JSON.stringify(toJsonForm(a))), recordedActions);
  assert.equal(host.sockets.size, 8, 'main, 3 channels, then the same 4 to the target');
  for (const [conn, s] of host.sockets) assert.ok(s.closed, `conn ${conn} closed at the end`);
  const kinds = host.events.map((e) => e.event);
  for (const k of ['channel_ready', 'migration_started', 'migration_connected', 'channel_switched', 'migrated', 'closed']) {
    assert.ok(kinds.includes(k), k);
  }
  const switched = host.events.filter((e) => e.event === 'channel_switched');
  assert.equal(switched.length, 4);
});

test('any chunking of received bytes gives the same actions', () => {
  const whole = drive((b) => [b]);
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) / 65536;
  const chunked = drive((b) => {
    const out = [];
    for (let i = 0; i < b.length; ) {
      const n = 1 + Math.floor(rand() * 17);
      out.push(b.subarray(i, i + n));
      i += n;
    }
    return out.length ? out : [b];
  });
  const bytes = drive((b) => [...b].map((x) => Uint8Array.of(x)).concat(b.length ? [] : [b]));
  const flat = (h) => h.log.map((a) => JSON.stringify(toJsonForm(a)));
  assert.deepEqual(flat(chunked), flat(whole));
  assert.deepEqual(flat(bytes), flat(whole));
  assert.deepEqual(chunked.sent(), whole.sent());
});

test('byte inputs accept any binary view and ArrayBuffer', () => {
  const recs = records(real.text);
  const views = [
    (b) => b,
    (b) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength),
    (b) => new DataView(b.buffer, b.byteOffset, b.byteLength),
    (b) => Buffer.from(b),
    (b) => {
      const big = new Uint8Array(b.length + 8);
      big.set(b, 4);
      return big.subarray(4, 4 + b.length);
    },
  ];
  for (const view of views) {
    const s = new SpiceSession(real.header.setup.config);
    const got = [];
    for (const rec of recs.slice(0, 12)) {
      const input = inputFromJsonForm(rec.input);
      if (input.type === 'received' || input.type === 'ticket') {
        const f = input.type === 'received' ? 'bytes' : 'ticket';
        input[f] = view(input[f]);
      }
      got.push(...s.step(rec.now, input).map((a) => JSON.stringify(toJsonForm(a))));
    }
    assert.deepEqual(got, recs.slice(0, 12).flatMap((r) => r.actions.map((a) => JSON.stringify(a))));
    s.free();
  }
});

test('a freed session refuses to run', () => {
  const s = new SpiceSession(real.header.setup.config);
  s.free();
  s.free();
  for (const call of [() => s.handle(0, { type: 'start' }), () => s.pollAction(), () => s.pollTimeout()]) {
    assert.throws(call, (e) => isLivemigError(e) && e.code === 'freed');
  }
});
