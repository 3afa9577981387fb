// A consumer application bundled with esbuild, as an npm user would: it imports the package
// by name (`livemig/slim`, its WebAssembly as `livemig/livemig.wasm` through esbuild's file
// loader), is bundled for Node and for browsers, and the bundles run in Node and in headless
// Chromium. Both drive a SpiceSession and a SpiceClient (on a fake WebSocket) and report.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import { serveStatic, CHROMIUM } from './static-server.js';

const pkg = fileURLToPath(new URL('../', import.meta.url));
let dir;

/** The application: shared by both bundles; `load(url)` gives initWasm its source. */
const APP = `
import { initWasm, SpiceSession, SpiceClient, isLivemigError } from 'livemig/slim';
import wasmUrl from 'livemig/livemig.wasm';

class FakeSocket {
  static made = [];
  constructor(url) { this.url = url; this.sent = []; FakeSocket.made.push(this); }
  send(b) { this.sent.push(b); }
  close() {}
}

export async function run(load) {
  await initWasm(await load(wasmUrl));
  const s = new SpiceSession({ server: { host: '127.0.0.1', port: 5900, tls_port: null, cert_subject: null } });
  const [connect] = s.step(0, { type: 'start' });
  const [link] = s.step(1, { type: 'connected', conn: connect.conn });
  let code;
  try { s.handle(-1, { type: 'timeout' }); } catch (e) { code = isLivemigError(e) && e.code; }
  const c = new SpiceClient({ url: 'ws://10.1.2.3:5901', WebSocket: FakeSocket });
  FakeSocket.made[0].onopen({});
  c.close();
  return {
    connect: { type: connect.type, port: connect.port, channel: connect.channel },
    linkMagic: String.fromCharCode(...link.bytes.subarray(0, 4)),
    invalidTime: code,
    wsUrl: FakeSocket.made[0].url,
    wsLinkBytes: FakeSocket.made[0].sent[0].length,
    closed: await c.closed,
  };
}
`;

const EXPECTED = {
  connect: { type: 'connect', port: 5900, channel: { type: 'main', id: 0 } },
  linkMagic: 'REDQ',
  invalidTime: 'invalid_time',
  wsUrl: 'ws://10.1.2.3:5901/',
  wsLinkBytes: 42,
  closed: 'disconnected by the application',
};

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'livemig-esbuild-'));
  // The consumer's own project: livemig installed in its node_modules.
  mkdirSync(path.join(dir, 'node_modules'));
  symlinkSync(pkg, path.join(dir, 'node_modules', 'livemig'), 'dir');
  writeFileSync(path.join(dir, 'app.js'), APP);
  writeFileSync(
    path.join(dir, 'node-main.js'),
    `import { readFile } from 'node:fs/promises';\nimport { run } from './app.js';\n` +
      `console.log(JSON.stringify(await run((u) => readFile(new URL(u, import.meta.url)))));\n`,
  );
  writeFileSync(
    path.join(dir, 'browser-main.js'),
    `import { run } from './app.js';\nrun((u) => new URL(u, import.meta.url)).then((r) => { window.result = r; }, (e) => { window.result = { error: String(e) }; });\n`,
  );
  writeFileSync(path.join(dir, 'index.html'), `<!doctype html><link rel="icon" href="data:,"><script type="module" src="out/browser-main.js"></script>`);
});
after(() => rmSync(dir, { recursive: true, force: true }));

const bundle = (entry, platform) =>
  build({
    absWorkingDir: dir,
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform,
    target: 'es2022',
    outdir: 'out',
    loader: { '.wasm': 'file' },
    logLevel: 'silent',
  });

test('an esbuild bundle for Node runs', async () => {
  await bundle('node-main.js', 'node');
  const wasm = readdirSync(path.join(dir, 'out')).filter((f) => f.endsWith('.wasm'));
  assert.equal(wasm.length, 1, 'the module is emitted next to the bundle');
  const out = execFileSync(process.execPath, [path.join(dir, 'out', 'node-main.js')], { encoding: 'utf8' });
  assert.deepEqual(JSON.parse(out), EXPECTED);
});

test('an esbuild bundle for browsers runs in headless Chromium', async () => {
  await bundle('browser-main.js', 'browser');
  const server = await serveStatic(pathToFileURL(`${dir}/`));
  const browser = await chromium.launch(CHROMIUM);
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${server.address().port}/index.html`);
    await page.waitForFunction(() => window.result !== undefined, null, { timeout: 10_000 });
    assert.deepEqual(await page.evaluate(() => window.result), EXPECTED);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    server.close();
  }
});
