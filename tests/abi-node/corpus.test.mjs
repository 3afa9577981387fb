// Every trace of the corpus through the independent Node host of the embeddable module
// (host.mjs), replayed by the package's trace runner: the canonical JSON of every action must
// equal the recorded one byte for byte. Needs scripts/build-wasm-abi.sh's module (same
// CARGO_TARGET_DIR); a missing module fails with that instruction.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runTrace, TraceMismatch } from '../../js/test/trace-runner.js';
import { corpus } from '../../js/test/corpus.js';
import { AbiModule, AbiHostError } from './host.mjs';

const module = AbiModule.load();
const engine = (setup) => module.engine(setup);
const traces = corpus();

test('the corpus is all there', () => {
  const dirs = new Set(traces.map((t) => t.name.split('/')[0]));
  for (const d of ['migration', 'hosts', 'spice', 'real']) assert.ok(dirs.has(d), d);
  assert.ok(traces.length >= 100, `${traces.length} traces`);
});

for (const t of traces) {
  test(`replay ${t.name}`, () => {
    const r = runTrace(t.text, engine);
    assert.ok(r.inputs > 0);
  });
}

test('a changed action is a mismatch', () => {
  const t = traces.find((x) => x.name === 'migration/managed-v3-success.jsonl');
  const lines = t.text.split('\n');
  const changed = lines[1].replace('"flags":257', '"flags":256');
  assert.notEqual(changed, lines[1]);
  lines[1] = changed;
  assert.throws(() => runTrace(lines.join('\n'), engine), (e) => e instanceof TraceMismatch && e.line === 2 && e.got.includes('"flags":257'));
});

test('guest refusals are typed and the machine lives on', () => {
  const t = traces.find((x) => x.name === 'migration/managed-v3-success.jsonl');
  const [header, first] = t.text.split('\n');
  const { setup } = JSON.parse(header);
  const { now, input, actions } = JSON.parse(first);
  const e = module.engine(JSON.stringify(setup));
  const refused = (f, code, statusName) =>
    assert.throws(f, (x) => x instanceof AbiHostError && x.code === code && x.statusName === statusName);
  refused(() => e.stepJson(now, '{not json'), 'guest', 'invalid_json');
  refused(() => e.stepJson(now, '{"type":"no_such_input"}'), 'guest', 'invalid_input');
  refused(() => e.stepJson(-1, JSON.stringify(input)), 'invalid_argument', undefined);
  refused(() => e.stepJson(1.5, JSON.stringify(input)), 'invalid_argument', undefined);
  refused(() => e.stepJson(now, { type: 'start' }), 'invalid_argument', undefined);
  assert.equal(e.dead, false);
  assert.deepEqual(e.stepJson(now, JSON.stringify(input)), actions.map((a) => JSON.stringify(a)));
  const deadline = e.pollTimeout();
  assert.ok(deadline === null || typeof deadline === 'bigint');
  e.free();
  refused(() => e.stepJson(now, JSON.stringify(input)), 'freed', undefined);
  refused(() => module.engine('{"machine":"toaster","config":{}}'), 'guest', 'invalid_setup');
  refused(() => module.engine('[]'), 'guest', 'invalid_setup');
});

test('a missing module names the build script', () => {
  assert.throws(
    () => AbiModule.load('/nonexistent/livemig_wasm_abi.wasm'),
    (e) => e instanceof AbiHostError && e.code === 'module_missing' && e.message.includes('scripts/build-wasm-abi.sh'),
  );
});
