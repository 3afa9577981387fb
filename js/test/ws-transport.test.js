// The ready WebSocket transport (SpiceClient) in Node 20, which has no WebSocket: the `ws`
// package is injected. Against real QEMU (spice-server accepts WebSocket on its SPICE port):
// a ticketed link (WebCrypto RSA-OAEP), a seamless migration with the strict checks, a
// wrong password, and the target policy. Then the transport's own edges on fake sockets.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import * as livemig from 'livemig';
import { SpiceClient, defaultUrl, encryptTicket, isLivemigError } from 'livemig';
import { QemuPair, followSeamless, seamlessViolations } from './qemu.js';
import { LoggedClient, linkMany } from './client-log.js';

const PASSWORD = 's3cret-ticket';
let pair;

before(async () => {
  pair = await QemuPair.start(['--password', PASSWORD]);
});
after(async () => {
  await pair?.stop();
});

/** A LoggedClient in the shape followSeamless drives. */
function driven(c) {
  return {
    waitFor: (name, opts) => c.waitFor(name, opts),
    stillAnswers: () => c.stillAnswers(),
    log: () => c.log,
    sessionId: () => c.sessionId,
  };
}

test('a ticketed link over ws reaches every channel with the server\'s session id', async () => {
  // Messages sent from inside onEvent (re-entrantly) go out too: 4 motions as soon as the
  // inputs channel is ready give one MOUSE_MOTION_ACK.
  let client;
  const motion = new Uint8Array(10);
  const onEvent = (e) => {
    if (e.event === 'channel_ready' && e.channel.type === 'inputs') {
      for (let i = 0; i < 4; i++) client.send({ type: 'inputs', id: 0 }, 111, motion);
    }
  };
  const c = new LoggedClient(livemig, { url: pair.url(), password: PASSWORD, WebSocket, onEvent });
  client = c;
  await c.waitFor('channel_ready', { n: 4 });
  await c.waitFor('message', { fields: { channel: 'inputs', msg_type: 111 } });
  const src = (await pair.ask('channels source')).channels;
  assert.equal(src.length, 4, JSON.stringify(src));
  assert.ok(src.every((ch) => ch.connection_id === c.sessionId), `${JSON.stringify(src)} vs ${c.sessionId}`);
  await c.stillAnswers();
  assert.equal(await c.close(), 'disconnected by the application');
});

test('100 consecutive ticketed links in Node, none failing', async () => {
  const r = await linkMany(livemig, { url: pair.url(), password: PASSWORD, WebSocket }, 100);
  assert.deepEqual({ ok: r.ok, failed: r.failed, errors: r.errors }, { ok: 100, failed: 0, errors: [] });
});

test('a wrong password is refused by the server and ends the session', async () => {
  const c = new LoggedClient(livemig, { url: pair.url(), password: 'wrong', WebSocket });
  const reason = await c.closed;
  const err = c.log.find((e) => e.event.event === 'error')?.event.error;
  assert.equal(err?.code, 'link_refused', JSON.stringify(c.log));
  assert.equal(err.error, 'permission_denied');
  assert.match(reason, /refused|permission/i);
});

test('the target policy refuses a migration: the client stays on the source', async () => {
  const asked = [];
  const c = new LoggedClient(livemig, {
    url: pair.url(),
    password: PASSWORD,
    WebSocket,
    allowTarget: async (t) => {
      asked.push(t);
      return false;
    },
  });
  await c.waitFor('channel_ready', { n: 4 });
  await pair.ask('client_migrate_info');
  const failed = await c.waitFor('migration_failed');
  assert.match(failed.reason, /policy|refused|not allowed/i);
  assert.equal(asked.length, 1);
  assert.equal(asked[0].port, pair.ready.destination.port);
  await c.stillAnswers();
  await c.close();
});

// Last: it migrates the pair's VM away from the source.
test('the client follows a real seamless migration (strict checks)', async () => {
  const c = new LoggedClient(livemig, { url: pair.url(), password: PASSWORD, WebSocket });
  await c.waitFor('channel_ready', { n: 4 });
  const r = await followSeamless(pair, driven(c), 4);
  assert.deepEqual(r.violations, []);
  assert.ok(r.lagMs < 1000, `${r.lagMs} ms`);
  await c.close();

  // The checks can fail: each broken fact of this real run is caught.
  const { facts } = r;
  const broken = (change) => seamlessViolations({ ...structuredClone(facts), ...change(structuredClone(facts)) });
  const at = facts.log.findIndex((e) => e.event.event === 'migrated');
  const inject = (event) => ({ log: facts.log.toSpliced(at, 0, { at: 0, event }) });
  assert.match(broken(() => inject({ event: 'switch_host', target: {} })).join(), /SWITCH_HOST/);
  assert.match(broken(() => inject({ event: 'session_reset' })).join(), /MIGRATE_END/);
  assert.match(broken(() => inject({ event: 'message', channel: { type: 'main', id: 0 }, msg_type: 103, body_len: 0 })).join(), /MAIN_INIT/);
  assert.match(broken(() => inject({ event: 'channel_ready', channel: { type: 'main', id: 0 }, session_id: 1 })).join(), /channel_ready/);
  assert.match(broken((f) => ({ destChannels: f.destChannels.map((ch, i) => (i ? ch : { ...ch, connection_id: ch.connection_id + 1 })) })).join(), /connection id/);
  assert.match(broken((f) => ({ spiceCompleted: { timestamp_us: f.migrated.completed_at_us + 1_500_000 } })).join(), /after completion/);
  const noData = facts.log.map((e) => (e.event.event === 'channel_switched' ? { ...e, event: { ...e.event, migrate_data_len: 0 } } : e));
  assert.match(broken(() => ({ log: noData })).join(), /MIGRATE_DATA/);
});

test('over wss: TLS links, and a seamless migration to the TLS port BEGIN announces', async () => {
  const tls = await QemuPair.start(['--tls', '--password', PASSWORD]);
  try {
    // The test CA, given to `ws` through the injectable constructor.
    const ca = tls.ready.ca_cert_pem;
    const TlsWebSocket = class extends WebSocket {
      constructor(url) {
        super(url, { ca });
      }
    };
    const urls = [];
    const { host, tls_port } = tls.ready.source;
    const c = new LoggedClient(livemig, {
      url: `wss://${host}:${tls_port}`,
      password: PASSWORD,
      WebSocket: TlsWebSocket,
      urlFor: (r) => {
        urls.push(`${r.role} ${r.channel.type} ${defaultUrl(r)} ${r.subject}`);
        return defaultUrl(r);
      },
    });
    await c.waitFor('channel_ready', { n: 4 });
    const src = (await tls.ask('channels source')).channels;
    assert.ok(src.length === 4 && src.every((ch) => ch.tls), JSON.stringify(src));
    const r = await followSeamless(tls, driven(c), 4);
    assert.deepEqual(r.violations, []);
    const dst = (await tls.ask('channels destination')).channels;
    assert.ok(dst.every((ch) => ch.tls), JSON.stringify(dst));
    const d = tls.ready.destination;
    assert.ok(urls.includes(`destination main wss://${d.host}:${d.tls_port}/ ${d.cert_subject}`), urls.join('\n'));
    await c.close();
  } finally {
    await tls.stop();
  }
});

test('semi-seamless: the client reconnects every channel to the target and resets', async () => {
  const semi = await QemuPair.start(['--semi-seamless', '--password', PASSWORD]);
  try {
    const c = new LoggedClient(livemig, { url: semi.url(), password: PASSWORD, WebSocket });
    await c.waitFor('channel_ready', { n: 4 });
    const sid = c.sessionId;
    await semi.ask('client_migrate_info');
    await c.waitFor('migration_connected', { fields: { kind: 'semi_seamless' } });
    await semi.ask('migrate');
    await c.waitFor('migrated', { fields: { kind: 'semi_seamless' } });
    assert.equal(c.count('session_reset'), 1);
    // Every channel is ready again, now on the destination (which keeps the session id).
    await c.waitFor('channel_ready', { n: 8 });
    const dst = (await semi.ask('channels destination')).channels;
    assert.equal(dst.length, 4, JSON.stringify(dst));
    assert.ok(dst.every((ch) => ch.connection_id === sid), `${JSON.stringify(dst)} vs ${sid}`);
    assert.deepEqual(await semi.channels('source', 0), []);
    await c.stillAnswers();
    await c.close();
  } finally {
    await semi.stop();
  }
});

// ---- the transport's edges, on fake sockets -------------------------------------------

/** A WebSocket stand-in: records what the transport does; the test plays the server. */
class FakeSocket {
  static made = [];
  binaryType = 'blob';
  sent = [];
  closed = false;
  onopen = null;
  onmessage = null;
  onclose = null;
  constructor(url) {
    this.url = url;
    FakeSocket.made.push(this);
  }
  send(bytes) {
    this.sent.push(bytes);
  }
  close() {
    this.closed = true;
  }
}

const tick = () => new Promise((r) => setTimeout(r, 0));

test('bad options are invalid_config errors', () => {
  const bad = (options, re) =>
    assert.throws(() => new SpiceClient(options), (e) => isLivemigError(e) && e.code === 'invalid_config' && re.test(e.message));
  bad({}, /url/);
  bad({ url: 'http://h:1' }, /ws:\/\//);
  bad({ url: 'not a url' }, /URL/);
  bad({ url: 'ws://h:1', WebSocket: undefined }, /WebSocket/);
});

test('the default URL mapping and its hook', async () => {
  assert.equal(defaultUrl({ host: '10.0.0.2', port: 5901, tls: false }), 'ws://10.0.0.2:5901/');
  assert.equal(defaultUrl({ host: '::1', port: 5902, tls: true }), 'wss://[::1]:5902/');
  FakeSocket.made = [];
  const requests = [];
  const c = new SpiceClient({
    url: 'wss://gw.example:443',
    WebSocket: FakeSocket,
    urlFor: (r) => {
      requests.push(r);
      return `wss://gw.example/spice/${r.host}/${r.port}`;
    },
  });
  assert.equal(FakeSocket.made.length, 1);
  assert.equal(FakeSocket.made[0].url, 'wss://gw.example/spice/gw.example/443');
  assert.equal(FakeSocket.made[0].binaryType, 'arraybuffer');
  assert.deepEqual(requests[0], { host: 'gw.example', port: 443, tls: true, subject: null, channel: { type: 'main', id: 0 }, role: 'source' });
  c.close();
  assert.equal(await c.closed, 'disconnected by the application');
  assert.ok(FakeSocket.made[0].closed);
});

test('a bad send throws invalid_input at once and changes nothing', async () => {
  FakeSocket.made = [];
  const c = new SpiceClient({ url: 'ws://h:1', WebSocket: FakeSocket });
  const ws = FakeSocket.made[0];
  ws.onopen({});
  const bad = (f) => assert.throws(f, (e) => isLivemigError(e) && e.code === 'invalid_input');
  bad(() => c.send({ type: 'no-such-channel', id: 0 }, 1, new Uint8Array()));
  bad(() => c.send({ type: 'inputs', id: 0 }, 70000, new Uint8Array()));
  bad(() => c.send({ type: 'inputs', id: 0 }, 1, 42));
  assert.equal(ws.sent.length, 1, 'only the link message went out');
  c.close();
  assert.equal(await c.closed, 'disconnected by the application');
});

test('a socket that never opens is a connect failure, and the session closes', async () => {
  FakeSocket.made = [];
  const events = [];
  const c = new SpiceClient({ url: 'ws://h:1', WebSocket: FakeSocket, onEvent: (e) => events.push(e) });
  FakeSocket.made[0].onclose({ code: 1006, reason: '' });
  const reason = await c.closed;
  assert.match(reason, /1006/);
  assert.ok(events.some((e) => e.event === 'error' && e.error.code === 'transport'), JSON.stringify(events));
});

test('a throwing constructor is a connect failure too', async () => {
  const c = new SpiceClient({
    url: 'ws://h:1',
    WebSocket: class {
      constructor() {
        throw new Error('blocked by policy');
      }
    },
  });
  assert.match(await c.closed, /blocked by policy/);
});

test('received bytes reach the session; a text frame closes the connection', async () => {
  FakeSocket.made = [];
  const events = [];
  const c = new SpiceClient({ url: 'ws://h:1', WebSocket: FakeSocket, onEvent: (e) => events.push(e) });
  const ws = FakeSocket.made[0];
  ws.onopen({});
  assert.equal(ws.sent.length, 1, 'the link message');
  const link = ws.sent[0];
  assert.deepEqual([...link.subarray(0, 4)], [...new TextEncoder().encode('REDQ')]);
  ws.onmessage({ data: 'hello' });
  assert.match(await c.closed, /text frame/);
  assert.ok(ws.closed);
});

test('encryptTicket: RSA-OAEP SHA-1, 128 bytes, decryptable to the password and its NUL', async () => {
  const { subtle } = globalThis.crypto;
  const kp = await subtle.generateKey(
    { name: 'RSA-OAEP', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-1' },
    true,
    ['encrypt', 'decrypt'],
  );
  const spki = new Uint8Array(await subtle.exportKey('spki', kp.publicKey));
  const ticket = await encryptTicket(subtle, spki, 'pw');
  assert.equal(ticket.length, 128);
  const plain = new Uint8Array(await subtle.decrypt({ name: 'RSA-OAEP' }, kp.privateKey, ticket));
  assert.deepEqual([...plain], [0x70, 0x77, 0]);
  await assert.rejects(encryptTicket(subtle, new Uint8Array([1, 2, 3]), 'pw'));
});
