// The browser entries (exports condition "default": src/index.js, src/trace.js) load their
// module with fetch(new URL(..., import.meta.url)) and top-level await, as a plain
// <script type="module"> does. Node's fetch has no file: URLs, so this test serves them
// (this file runs in its own process: the Node entries never initialised these modules).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';

test('the browser entries fetch their module from the package', async () => {
  const fetched = [];
  const realFetch = globalThis.fetch;
  globalThis.fetch = async (input) => {
    const url = new URL(String(input instanceof Request ? input.url : input));
    fetched.push(url.pathname.replace(/^.*\/js\//, ''));
    return new Response(await readFile(url), { headers: { 'content-type': 'application/wasm' } });
  };
  try {
    const { SpiceSession, isLivemigError } = await import('../src/index.js');
    const s = new SpiceSession({ server: { host: 'h', port: 5900, tls_port: null, cert_subject: null } });
    const [connect] = s.step(0, { type: 'start' });
    assert.equal(connect.type, 'connect');
    const [transmit] = s.step(1, { type: 'connected', conn: connect.conn });
    assert.ok(transmit.bytes instanceof Uint8Array);
    assert.throws(() => s.handle(0, { type: 'nope' }), isLivemigError);

    const { TraceEngine } = await import('../src/trace.js');
    const e = new TraceEngine(JSON.stringify({ machine: 'spice_session', config: { server: { host: 'h', port: 1, tls_port: null, cert_subject: null } } }));
    assert.equal(JSON.parse(e.stepJson(0, '{"type":"start"}')[0]).type, 'connect');
  } finally {
    globalThis.fetch = realFetch;
  }
  assert.deepEqual(fetched, ['dist/livemig_wasm_bg.wasm', 'dist/trace/livemig_wasm_bg.wasm']);
});
