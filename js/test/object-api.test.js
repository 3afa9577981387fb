// The package's object API (the module users load) against the corpus: every orchestrator
// and SPICE session trace, inputs given as objects with Uint8Array bytes, actions compared
// in their JSON form (Uint8Array -> base64) with the recorded text, byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MigrationOrchestrator, SpiceSession } from 'livemig';
import { corpus, records, toJsonForm, inputFromJsonForm } from './corpus.js';

const classes = { orchestrator: MigrationOrchestrator, spice_session: SpiceSession };
const traces = corpus().filter((t) => t.header.setup.machine in classes);

test('the object API covers the orchestrator and SPICE traces', () => {
  const n = (m) => traces.filter((t) => t.header.setup.machine === m).length;
  assert.ok(n('orchestrator') >= 30 && n('spice_session') >= 30, `${n('orchestrator')} + ${n('spice_session')}`);
});

for (const t of traces) {
  test(`object API replays ${t.name}`, () => {
    const Machine = classes[t.header.setup.machine];
    const m = new Machine(t.header.setup.config);
    let bytesIn = 0;
    let bytesOut = 0;
    for (const [i, rec] of records(t.text).entries()) {
      const input = inputFromJsonForm(rec.input);
      bytesIn += Object.values(input).filter((v) => v instanceof Uint8Array).length;
      const got = m.step(rec.now, input);
      for (const a of got) {
        bytesOut += Object.values(a).filter((v) => v instanceof Uint8Array).length;
        assert.ok(!JSON.stringify(a).includes('BigInt'));
      }
      const expected = rec.actions.map((a) => JSON.stringify(a));
      assert.deepEqual(got.map((a) => JSON.stringify(toJsonForm(a))), expected, `record ${i + 2}`);
      const timeout = m.pollTimeout();
      assert.ok(timeout === undefined || Number.isSafeInteger(timeout), `timeout ${timeout}`);
    }
    m.free();
    // Bytes crossed as Uint8Array in both directions wherever the trace has any.
    const hasBytes = /"(bytes|ticket|body|cookie|public_key)":"/.test(t.text);
    if (hasBytes) assert.ok(bytesIn + bytesOut > 0);
  });
}
