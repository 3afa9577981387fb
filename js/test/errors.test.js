// Error codes: every failure is a JS Error named LivemigError with a stable `code`, the
// machine is unharmed by a refused call, and no input makes the wasm trap (a panic would
// surface as a WebAssembly.RuntimeError, which is not a LivemigError).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MigrationOrchestrator, SpiceSession, isLivemigError } from 'livemig';
import { TraceEngine } from 'livemig/trace';
import { corpus, records, inputFromJsonForm } from './corpus.js';

const CODES = [
  'invalid_json',
  'unknown_machine',
  'invalid_config',
  'invalid_input',
  'invalid_time',
  'unrepresentable',
  'busy',
  'freed',
];

function throwsCode(fn, code) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof Error, `${e} is an Error`);
    assert.equal(e.name, 'LivemigError');
    assert.ok(isLivemigError(e));
    assert.equal(e.code, code, e.message);
    assert.ok(CODES.includes(e.code));
    assert.ok(e.message.length > 0);
    return true;
  });
}

const traces = corpus();
const spiceTrace = traces.find((t) => t.name === 'real/qemu-seamless-4ch.jsonl');
const orchTrace = traces.find((t) => t.name === 'migration/managed-v3-with-params.jsonl');
const spiceConfig = spiceTrace.header.setup.config;
const orchConfig = orchTrace.header.setup.config;
const spiceSetup = JSON.stringify(spiceTrace.header.setup);

test('the ErrorCode type lists exactly the codes', async () => {
  const { readFileSync } = await import('node:fs');
  for (const dts of ['../dist/livemig_wasm.d.ts', '../dist/trace/livemig_wasm.d.ts']) {
    const text = readFileSync(new URL(dts, import.meta.url), 'utf8');
    const m = text.match(/export type ErrorCode = ([^;]*);/);
    assert.ok(m, dts);
    assert.deepEqual(m[1].split(' | ').map((s) => JSON.parse(s)), CODES);
  }
});

test('TraceEngine: bad setups', () => {
  throwsCode(() => new TraceEngine('{'), 'invalid_json');
  throwsCode(() => new TraceEngine(''), 'invalid_json');
  throwsCode(() => new TraceEngine('{"machine":"spice_session"} trailing'), 'invalid_json');
  throwsCode(() => new TraceEngine(42), 'invalid_json');
  throwsCode(() => new TraceEngine(undefined), 'invalid_json');
  throwsCode(() => new TraceEngine({ machine: 'spice_session' }), 'invalid_json');
  throwsCode(() => new TraceEngine('{"machine":"toaster","config":{}}'), 'unknown_machine');
  throwsCode(() => new TraceEngine('{"machine":7,"config":{}}'), 'unknown_machine');
  throwsCode(() => new TraceEngine('[]'), 'unknown_machine');
  throwsCode(() => new TraceEngine('{"machine":"orchestrator","config":{"mode":"sideways"}}'), 'invalid_config');
  throwsCode(() => new TraceEngine('{"machine":"spice_session","config":{}}'), 'invalid_config');
  throwsCode(() => new TraceEngine('{"machine":"spice_session"}'), 'invalid_config');
});

test('TraceEngine: bad inputs leave the machine usable', () => {
  const e = new TraceEngine(spiceSetup);
  throwsCode(() => e.stepJson(0, '{"type":'), 'invalid_json');
  throwsCode(() => e.stepJson(0, 'start'), 'invalid_json');
  throwsCode(() => e.stepJson(0, { type: 'start' }), 'invalid_json');
  throwsCode(() => e.stepJson(0, '{"type":"bogus"}'), 'invalid_input');
  throwsCode(() => e.stepJson(0, '{"type":"received","conn":1,"bytes":[1,2]}'), 'invalid_input');
  throwsCode(() => e.stepJson(0, '{"type":"received","conn":1,"bytes":"!!"}'), 'invalid_input');
  throwsCode(() => e.stepJson(0, '{"type":"connected","conn":-1}'), 'invalid_input');
  throwsCode(() => e.stepJson(0, '{"type":"connected","conn":4294967296}'), 'invalid_input');
  throwsCode(() => e.stepJson(-1, '{"type":"start"}'), 'invalid_time');
  throwsCode(() => e.stepJson(NaN, '{"type":"start"}'), 'invalid_time');
  throwsCode(() => e.stepJson(Infinity, '{"type":"start"}'), 'invalid_time');
  throwsCode(() => e.stepJson(2 ** 53, '{"type":"start"}'), 'invalid_time');
  throwsCode(() => e.stepJson('0', '{"type":"start"}'), 'invalid_time');
  throwsCode(() => e.stepJson(0n, '{"type":"start"}'), 'invalid_time');
  // Deep nesting stops at serde_json's recursion limit, not at the end of the stack.
  const deep = `${'['.repeat(100000)}${']'.repeat(100000)}`;
  throwsCode(() => e.stepJson(0, deep), 'invalid_input');
  throwsCode(() => e.stepJson(0, `{"type":"start","x":${deep}}`), 'invalid_input');
  throwsCode(() => e.stepJson(0, `{"type":"start","x":${'['.repeat(100000)}}`), 'invalid_json');
  const first = records(spiceTrace.text)[0];
  assert.deepEqual(e.stepJson(first.now, JSON.stringify(first.input)), first.actions.map((a) => JSON.stringify(a)));
  e.free();
  throwsCode(() => e.stepJson(0, '{"type":"start"}'), 'freed');
});

test('object API: bad configurations', () => {
  throwsCode(() => new SpiceSession({}), 'invalid_config');
  throwsCode(() => new SpiceSession(undefined), 'invalid_config');
  throwsCode(() => new SpiceSession('{"server":{}}'), 'invalid_config');
  throwsCode(() => new SpiceSession({ ...spiceConfig, server: { ...spiceConfig.server, port: 70000 } }), 'invalid_config');
  throwsCode(() => new SpiceSession({ ...spiceConfig, channel_types: [{}] }), 'invalid_config');
  throwsCode(() => new SpiceSession({ ...spiceConfig, password: () => 'x' }), 'invalid_config');
  throwsCode(() => new MigrationOrchestrator({ ...orchConfig, mode: 'sideways' }), 'invalid_config');
  throwsCode(() => new MigrationOrchestrator({ ...orchConfig, flags: -1 }), 'invalid_config');
  throwsCode(() => new MigrationOrchestrator({ ...orchConfig, flags: 1.5 }), 'invalid_config');
  throwsCode(() => new MigrationOrchestrator({ ...orchConfig, source_features: ['NOPE'] }), 'invalid_config');
  const throwing = { get server() { throw new Error('getter'); } };
  throwsCode(() => new SpiceSession(throwing), 'invalid_config');
  const cyclic = { ...spiceConfig };
  cyclic.self = cyclic;
  throwsCode(() => new SpiceSession(cyclic), 'invalid_config');
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  throwsCode(() => new SpiceSession(proxy), 'invalid_config');
});

test('object API: bad inputs leave the session usable', () => {
  const s = new SpiceSession(spiceConfig);
  throwsCode(() => s.handle(0, { type: 'bogus' }), 'invalid_input');
  throwsCode(() => s.handle(0, 'start'), 'invalid_input');
  throwsCode(() => s.handle(0, null), 'invalid_input');
  throwsCode(() => s.handle(0, { type: 'received', conn: 1, bytes: [1, 2, 3] }), 'invalid_input');
  throwsCode(() => s.handle(0, { type: 'received', conn: '1', bytes: new Uint8Array(1) }), 'invalid_input');
  throwsCode(() => s.handle(0, { type: 'received', conn: 1.5, bytes: new Uint8Array(1) }), 'invalid_input');
  throwsCode(() => s.handle(0, { type: 'send', channel: { type: 'main', id: 300 }, msg_type: 1, body: new Uint8Array() }), 'invalid_input');
  throwsCode(() => s.handle(0, { type: 'start', extra: Symbol('x') }), 'invalid_input');
  throwsCode(() => s.handle(0, { type: 'start', get extra() { throw new Error('getter'); } }), 'invalid_input');
  let deep = { type: 'start' };
  for (let i = 0; i < 100; i++) deep = { type: 'start', x: deep };
  throwsCode(() => s.handle(0, deep), 'invalid_input');
  throwsCode(() => s.handle(-5, { type: 'start' }), 'invalid_time');
  throwsCode(() => s.handle(undefined, { type: 'start' }), 'invalid_time');
  throwsCode(() => s.handle(null, { type: 'start' }), 'invalid_time');
  // Nothing above reached the machine: it starts exactly as the trace says.
  const recs = records(spiceTrace.text);
  const got = s.step(recs[0].now, inputFromJsonForm(recs[0].input));
  assert.equal(got.length, recs[0].actions.length);
  assert.equal(got[0].type, 'connect');
  // Extra fields are ignored, as in JSON; fractional times are truncated.
  const o = new MigrationOrchestrator(orchConfig);
  assert.deepEqual(o.step(0.9, { type: 'start', note: 'ignored' }), new MigrationOrchestrator(orchConfig).step(0, { type: 'start' }));
});

test('an action a JS number cannot carry is refused, not panicked on', () => {
  // BigInt inputs are tolerated for 64-bit fields, but no BigInt ever comes out: a u64
  // above 2^53-1 in an action is `unrepresentable`.
  const config = { ...orchConfig, params: [{ field: 'bandwidth', value: { ullong: 2n ** 60n } }] };
  const o = new MigrationOrchestrator(config);
  o.handle(0, { type: 'start' });
  throwsCode(() => o.pollAction(), 'unrepresentable');
  assert.equal(o.pollAction(), undefined);
  const same = new TraceEngine(JSON.stringify({ machine: 'orchestrator', config: { ...orchConfig, params: [] } }));
  assert.ok(same.stepJson(0, '{"type":"start"}').length > 0);
});

/** A deterministic generator of hostile values. */
function* hostile(seed) {
  let x = seed;
  const rand = () => ((x = (x * 1103515245 + 12345) >>> 0) >>> 8) / 16777216;
  const pick = (a) => a[Math.floor(rand() * a.length)];
  const scalar = () =>
    pick([0, -1, 1.5, 2 ** 53, NaN, Infinity, '', 'main', 'x'.repeat(1000), true, null, undefined, 65535, 4294967296, -0, 2n ** 70n]);
  const value = (d) => {
    const r = rand();
    if (d > 3 || r < 0.4) return scalar();
    if (r < 0.55) return new Uint8Array(Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256)));
    if (r < 0.7) return Array.from({ length: Math.floor(rand() * 4) }, () => value(d + 1));
    const o = {};
    for (const k of ['type', 'conn', 'bytes', 'channel', 'id', 'msg_type', 'body', 'ticket', 'allow', 'reason', 'host', 'port'].filter(() => rand() < 0.4)) {
      o[k] = value(d + 1);
    }
    return o;
  };
  const types = ['start', 'connected', 'connect_failed', 'received', 'closed', 'ticket', 'ticket_failed', 'target_decision', 'send', 'timeout', 'disconnect', 'begun', 'prepared', 'call_failed', 'cancel'];
  for (;;) {
    const v = value(0);
    if (v && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array) && rand() < 0.8) v.type = pick(types);
    yield v;
  }
}

test('hostile inputs never trap the wasm', () => {
  const s = new SpiceSession(spiceConfig);
  const o = new MigrationOrchestrator(orchConfig);
  const e = new TraceEngine(spiceSetup);
  const gen = hostile(12345);
  let accepted = 0;
  for (let i = 0; i < 3000; i++) {
    const v = gen.next().value;
    for (const call of [
      () => s.step(i, v),
      () => o.step(i, v),
      () => e.stepJson(i, JSON.stringify(v, (k, x) => (typeof x === 'bigint' ? Number(x) : x instanceof Uint8Array ? Buffer.from(x).toString('base64') : x)) ?? 'null'),
    ]) {
      try {
        call();
        accepted++;
      } catch (err) {
        assert.ok(isLivemigError(err), `not a LivemigError: ${err?.stack ?? err}`);
      }
    }
  }
  assert.ok(accepted > 100, `${accepted} hostile inputs were well-formed`);
  // Random bytes on a linked connection: the session reports errors as actions.
  const recs = records(spiceTrace.text);
  const live = new SpiceSession(spiceConfig);
  for (const rec of recs.slice(0, 6)) live.step(rec.now, inputFromJsonForm(rec.input));
  for (let i = 0; i < 300; i++) {
    const bytes = new Uint8Array(Array.from({ length: (i * 37) % 300 }, (_, k) => (k * 131 + i * 7) & 255));
    for (const conn of [1, 2, 3, 99]) live.step(100 + i, { type: 'received', conn, bytes });
  }
});
