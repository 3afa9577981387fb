// The Node host (host.mjs) against modules that break wasm-abi/README.md's ABI version 1:
// each lie is a typed error, never a wrong answer or a read outside the guest's memory. The
// modules are a small fake guest (WAT, assembled by binaryen from js/node_modules) with one
// export replaced per test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import binaryen from '../../js/node_modules/binaryen/index.js';
import { AbiModule, AbiHostError, decodeFrames } from './host.mjs';

const PAGE = 65536;

/** A benign fake guest: lm_step answers one action `{}`, lm_poll_timeout the deadline 1234. */
const BENIGN = {
  lm_abi_version: '(func (export "lm_abi_version") (result i32) (i32.const 1))',
  lm_alloc: '(func (export "lm_alloc") (param i32) (result i32) (i32.const 1024))',
  lm_free: '(func (export "lm_free") (param i32 i32) (result i32) (i32.const 0))',
  lm_new: '(func (export "lm_new") (param i32 i32) (result i32) (global.set $len (i32.const 0)) (i32.const 1))',
  lm_step: `(func (export "lm_step") (param i32 i64 i32 i32) (result i32)
    (global.set $ptr (i32.const 256)) (global.set $len (i32.const 10)) (i32.const 0))`,
  lm_poll_timeout: `(func (export "lm_poll_timeout") (param i32) (result i32)
    (global.set $ptr (i32.const 512)) (global.set $len (i32.const 8)) (i32.const 0))`,
  lm_drop: '(func (export "lm_drop") (param i32) (result i32) (i32.const 0))',
  lm_result_ptr: '(func (export "lm_result_ptr") (result i32) (global.get $ptr))',
  lm_result_len: '(func (export "lm_result_len") (result i32) (global.get $len))',
};

/** The fake guest's bytes with some exports replaced (`null` removes one). */
function fake(overrides = {}, { memory = '(memory (export "memory") 1)', extra = '' } = {}) {
  const funcs = Object.values({ ...BENIGN, ...overrides }).filter((f) => f !== null);
  const m = binaryen.parseText(`(module ${extra} ${memory}
    (global $ptr (mut i32) (i32.const 0)) (global $len (mut i32) (i32.const 0))
    (data (i32.const 256) "\\01\\00\\00\\00\\02\\00\\00\\00{}")
    (data (i32.const 512) "\\d2\\04\\00\\00\\00\\00\\00\\00")
    ${funcs.join('\n')})`);
  try {
    assert.ok(m.validate(), 'the fake guest is valid wasm');
    return m.emitBinary();
  } finally {
    m.dispose();
  }
}

/** A step whose result is `len` bytes at `ptr` (constants). */
const stepResult = (ptr, len, status = 0) => ({
  lm_step: `(func (export "lm_step") (param i32 i64 i32 i32) (result i32)
    (global.set $ptr (i32.const ${ptr})) (global.set $len (i32.const ${len})) (i32.const ${status}))`,
});

const load = (bytes, options) => AbiModule.fromBytes(bytes, options);
const engine = (bytes, options) => load(bytes, options).engine('{}');
const is = (code) => (e) => {
  assert.ok(e instanceof AbiHostError, `an AbiHostError, got ${e}`);
  assert.equal(e.code, code, e.message);
  return true;
};

/** `f` fails with `code` (and a message matching `pattern`), the instance is dead and says so
 * on the next call. */
function kills(e, f, code, pattern = /./) {
  assert.throws(f, (x) => is(code)(x) && pattern.test(x.message));
  assert.equal(e.dead, true);
  assert.throws(() => e.stepJson(0, '{}'), is('dead'));
}

test('the benign fake guest works (the negative tests change one thing each)', () => {
  const e = engine(fake());
  assert.deepEqual(e.stepJson(0, '{}'), ['{}']);
  assert.equal(e.pollTimeout(), 1234n);
  e.free();
  assert.throws(() => e.pollTimeout(), is('freed'));
});

test('a wrong ABI version is refused before any other call', () => {
  for (const v of [0, 2, -1]) {
    const m = fake({ lm_abi_version: `(func (export "lm_abi_version") (result i32) (i32.const ${v}))`, lm_new: '(func (export "lm_new") (param i32 i32) (result i32) (unreachable))' });
    assert.throws(() => engine(m), (e) => is('abi_version')(e) && e.message.includes(`version ${v}`));
  }
});

test('a module with imports is refused at load', () => {
  const m = fake({}, { extra: '(import "env" "now" (func $now (result i64)))' });
  assert.throws(() => load(m), (e) => is('imports')(e) && e.message.includes('env.now'));
  const mem = fake({}, { memory: '(import "env" "memory" (memory 1)) (export "memory" (memory 0))' });
  assert.throws(() => load(mem), (e) => is('imports')(e) && e.message.includes('env.memory'));
});

test('missing exports and invalid bytes are refused at load', () => {
  assert.throws(() => load(fake({ lm_drop: null })), (e) => is('missing_export')(e) && e.message.includes('lm_drop'));
  assert.throws(() => load(fake({}, { memory: '(memory 1)' })), (e) => is('missing_export')(e) && e.message.includes('memory'));
  assert.throws(() => load(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 7])), is('invalid_module'));
});

test('a result buffer outside memory is an ABI violation', () => {
  // Up to the last byte of memory is accepted (the frames end exactly there)...
  const lastBytes = { extra: '(data (i32.const 65526) "\\01\\00\\00\\00\\02\\00\\00\\00[]")' };
  assert.deepEqual(engine(fake(stepResult(PAGE - 10, 10), lastBytes)).stepJson(0, '{}'), ['[]']);
  // ...one byte more is not, nor a pointer past the end or "negative" (>= 2^31 unsigned).
  for (const [ptr, len] of [[PAGE - 10, 11], [PAGE, 1], [0, PAGE + 1], [-16, 8], [8, -1], [0x7fffffff, 0]]) {
    const e = engine(fake(stepResult(ptr, len), lastBytes));
    kills(e, () => e.stepJson(0, '{}'), 'abi_violation', /outside the guest's 65536 bytes/);
  }
});

test('lying frames are ABI violations', () => {
  const frames = [
    [5, 0, 0, 0, 2, 0, 0, 0, 0x7b, 0x7d], // count larger than the bytes
    [1, 0, 0, 0, 9, 0, 0, 0, 0x7b, 0x7d], // length larger than the rest
    [1, 0, 0, 0, 2, 0, 0, 0, 0xff, 0xfe], // not UTF-8
    [0, 0, 0, 0, 0], // a byte after the last frame
    [1, 0, 0], // no count
  ];
  for (const f of frames) {
    assert.throws(() => decodeFrames(new Uint8Array(f)), is('abi_violation'), String(f));
    const data = [...f].map((b) => `\\${b.toString(16).padStart(2, '0')}`).join('');
    const e = engine(fake(stepResult(4096, f.length), { extra: `(data (i32.const 4096) "${data}")` }));
    kills(e, () => e.stepJson(0, '{}'), 'abi_violation');
  }
  assert.deepEqual(decodeFrames(new Uint8Array([0, 0, 0, 0])), []);
});

test('a poll_timeout result that is neither empty nor 8 bytes is an ABI violation', () => {
  const e = engine(fake({
    lm_poll_timeout: `(func (export "lm_poll_timeout") (param i32) (result i32)
      (global.set $ptr (i32.const 512)) (global.set $len (i32.const 5)) (i32.const 0))`,
  }));
  kills(e, () => e.pollTimeout(), 'abi_violation');
});

test('statuses: a known code is a guest error that leaves the instance alive, others are violations', () => {
  const refusing = engine(fake(stepResult(256, 0, 5)));
  assert.throws(() => refusing.stepJson(0, '{}'), (e) => is('guest')(e) && e.status === 5 && e.statusName === 'invalid_input');
  assert.equal(refusing.dead, false);
  for (const status of [9, 42, -1]) {
    const e = engine(fake(stepResult(256, 0, status)));
    kills(e, () => e.stepJson(0, '{}'), 'abi_violation');
  }
  const newFails = (r) => fake({ lm_new: `(func (export "lm_new") (param i32 i32) (result i32) (i32.const ${r}))` });
  assert.throws(() => engine(newFails(-4)), (e) => is('guest')(e) && e.statusName === 'invalid_setup');
  for (const r of [0, -9, -2147483648]) assert.throws(() => engine(newFails(r)), is('abi_violation'));
});

test('lm_alloc: 0 is a failed allocation, a buffer outside memory is a violation', () => {
  const alloc = (r) => fake({ lm_alloc: `(func (export "lm_alloc") (param i32) (result i32) (i32.const ${r}))` });
  assert.throws(() => engine(alloc(0)), is('alloc_failed'));
  assert.throws(() => engine(alloc(PAGE - 1)), is('abi_violation')); // '{}' needs 2 bytes
  assert.throws(() => engine(alloc(-8)), is('abi_violation'));
  const free = fake({ lm_free: '(func (export "lm_free") (param i32 i32) (result i32) (i32.const 1))' });
  assert.throws(() => engine(free), is('abi_violation'));
});

test('exports with signatures other than the ABI are violations', () => {
  const i32Now = engine(fake({ lm_step: '(func (export "lm_step") (param i32 i32 i32 i32) (result i32) (i32.const 0))' }));
  kills(i32Now, () => i32Now.stepJson(0, '{}'), 'abi_violation');
  const i64Result = engine(fake({ lm_step: '(func (export "lm_step") (param i32 i64 i32 i32) (result i64) (i64.const 0))' }));
  kills(i64Result, () => i64Result.stepJson(0, '{}'), 'abi_violation');
  const noResult = engine(fake({ lm_step: '(func (export "lm_step") (param i32 i64 i32 i32))' }));
  kills(noResult, () => noResult.stepJson(0, '{}'), 'abi_violation');
});

test('a trap kills the instance, not the host: the module keeps serving fresh engines', () => {
  const m = load(fake({
    lm_step: `(func (export "lm_step") (param i32 i64 i32 i32) (result i32)
      (if (i64.eq (local.get 1) (i64.const 666)) (then (unreachable)))
      (global.set $ptr (i32.const 256)) (global.set $len (i32.const 10)) (i32.const 0))`,
  }));
  const e = m.engine('{}');
  kills(e, () => e.stepJson(666, '{}'), 'trap');
  assert.deepEqual(m.engine('{}').stepJson(0, '{}'), ['{}']);
});

test('memory grown past the limit kills the instance', () => {
  const grows = fake({
    lm_step: `(func (export "lm_step") (param i32 i64 i32 i32) (result i32)
      (drop (memory.grow (i32.const 32))) (i32.const 0))`,
  });
  const e = engine(grows, { maxMemoryBytes: 16 * PAGE });
  kills(e, () => e.stepJson(0, '{}'), 'memory_limit');
  assert.throws(() => engine(fake({}, { memory: '(memory (export "memory") 17)' }), { maxMemoryBytes: 16 * PAGE }), is('memory_limit'));
});

test('u64 times reach the guest unchanged', () => {
  // The fake echoes `now` as its poll_timeout deadline.
  const e = engine(fake({
    lm_step: `(func (export "lm_step") (param i32 i64 i32 i32) (result i32)
      (i64.store (i32.const 512) (local.get 1))
      (global.set $ptr (i32.const 256)) (global.set $len (i32.const 10)) (i32.const 0))`,
  }));
  for (const now of [0, 2 ** 53 - 1, 2n ** 64n - 1n]) {
    e.stepJson(now, '{}');
    assert.equal(e.pollTimeout(), BigInt(now));
  }
  assert.throws(() => e.stepJson(2n ** 64n, '{}'), is('invalid_argument'));
  assert.throws(() => e.stepJson(2 ** 53, '{}'), is('invalid_argument'));
});
