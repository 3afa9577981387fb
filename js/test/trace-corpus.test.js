// Every trace of the corpus through the conformance engine (`livemig/trace`): the canonical
// JSON of every action must equal the recorded one byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TraceEngine, traceVersion } from 'livemig/trace';
import { runTrace, TraceMismatch, TraceFormatError } from './trace-runner.js';
import { corpus } from './corpus.js';

const traces = corpus();
const engine = (setup) => new TraceEngine(setup);

test('the corpus is all there', () => {
  const dirs = new Set(traces.map((t) => t.name.split('/')[0]));
  for (const d of ['migration', 'hosts', 'spice', 'real']) assert.ok(dirs.has(d), d);
  assert.ok(traces.length >= 100, `${traces.length} traces`);
  const machines = new Set(traces.map((t) => t.header.setup.machine));
  assert.deepEqual([...machines].sort(), ['destination_host', 'orchestrator', 'source_host', 'spice_session']);
});

for (const t of traces) {
  test(`replay ${t.name}`, () => {
    const r = runTrace(t.text, engine, { version: traceVersion() });
    assert.ok(r.inputs > 0);
  });
}

test('the runner notices a changed action', () => {
  const t = traces.find((x) => x.name === 'real/qemu-seamless-4ch.jsonl');
  const lines = t.text.split('\n');
  const i = lines.findIndex((l, k) => k > 0 && l.includes('"type":"transmit"'));
  lines[i] = lines[i].replace('"type":"transmit","conn":1', '"type":"transmit","conn":9');
  assert.throws(
    () => runTrace(lines.join('\n'), engine),
    (e) => e instanceof TraceMismatch && e.line === i + 1 && e.got.includes('"conn":1'),
  );
});

test('the runner notices a missing and an extra action', () => {
  const t = traces.find((x) => x.name === 'migration/managed-v3-success.jsonl');
  const lines = t.text.split('\n');
  const rec = JSON.parse(lines[1]);
  const fewer = { ...rec, actions: [] };
  assert.throws(
    () => runTrace([lines[0], JSON.stringify(fewer)].join('\n'), engine),
    (e) => e instanceof TraceMismatch && e.expected === '(none)',
  );
  const more = { ...rec, actions: [...rec.actions, rec.actions[0]] };
  assert.throws(
    () => runTrace([lines[0], JSON.stringify(more)].join('\n'), engine),
    (e) => e instanceof TraceMismatch && e.got === '(none)',
  );
});

test('the runner refuses malformed traces', () => {
  const t = traces.find((x) => x.name === 'migration/managed-v3-success.jsonl');
  const [header, first] = t.text.split('\n');
  const bad = (text) => assert.throws(() => runTrace(text, engine), TraceFormatError);
  bad('');
  bad(`${header}\n{not json`);
  bad(`${header}\n${first.replace('{"now"', '{ "now"')}`);
  bad(header.replace('"livemig_trace":1', '"livemig_trace":2'));
});
