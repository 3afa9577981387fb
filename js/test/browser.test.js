// Headless Chromium (Debian's, driven by playwright-core) loads a page from 127.0.0.1 that
// imports the package with a plain <script type="module">, links to a real QEMU over
// WebSocket and follows a real seamless migration that the test triggers through QMP
// (`livemig qemu`). Pass only with the strict seamless checks (test/qemu.js). Then 1,000
// consecutive ticketed links from the page, none failing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { QemuPair, followSeamless } from './qemu.js';
import { serveStatic, CHROMIUM } from './static-server.js';

const PASSWORD = 'browser-ticket';
const root = new URL('../', import.meta.url);

let server;
let browser;
let page;
const pageErrors = [];

before(async () => {
  // js/ (src/, dist/, test/), read-only.
  server = await serveStatic(root, /^\/(src|dist|test)\//);
  browser = await chromium.launch(CHROMIUM);
});
after(async () => {
  await browser?.close();
  server?.close();
});

async function openPage() {
  page = await browser.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && pageErrors.push(m.text()));
  await page.goto(`http://127.0.0.1:${server.address().port}/test/browser/index.html`);
  await page.waitForFunction(() => document.getElementById('status').textContent === 'ready', null, { timeout: 10_000 });
  return page;
}

/** The page's client in the shape followSeamless drives. */
const inPage = {
  waitFor: (name, opts) => page.evaluate(([n, o]) => window.page.waitFor(n, o), [name, opts ?? {}]),
  stillAnswers: () => page.evaluate(() => window.page.stillAnswers()),
  log: () => page.evaluate(() => window.page.log()),
  sessionId: () => page.evaluate(() => window.page.sessionId()),
};

test('a page in headless Chromium follows a real seamless migration', async (t) => {
  const pair = await QemuPair.start(['--password', PASSWORD]);
  try {
    await openPage();
    await page.evaluate(([url, pw]) => window.page.start(url, pw), [pair.url(), PASSWORD]);
    await inPage.waitFor('channel_ready', { n: 4 });
    const sid = await inPage.sessionId();
    assert.match(await page.textContent('#status'), new RegExp(`^linked, session ${sid}$`));

    const r = await followSeamless(pair, inPage, 4);
    assert.deepEqual(r.violations, []);
    assert.ok(r.lagMs < 1000, `SPICE_MIGRATE_COMPLETED ${r.lagMs} ms after completion`);
    t.diagnostic(`SPICE_MIGRATE_COMPLETED ${r.lagMs.toFixed(1)} ms after the migration completed (${r.facts.migrated.total_time_ms} ms migration)`);

    // The page reports the switch to its user.
    const dest = pair.ready.destination;
    assert.equal(await page.textContent('#status'), `migrated (seamless) to ${dest.host}:${dest.port}, session ${sid}`);
    assert.equal(await page.evaluate(() => window.page.close()), 'disconnected by the application');
    assert.deepEqual(pageErrors, []);
  } finally {
    await page?.close();
    await pair.stop();
  }
});

test('1,000 consecutive ticketed links from the page, none failing', async (t) => {
  const pair = await QemuPair.start(['--password', PASSWORD]);
  try {
    await openPage();
    const n = 1000;
    const r = await page.evaluate(([url, pw, k]) => window.page.linkMany(url, pw, k), [pair.url(), PASSWORD, n]);
    assert.deepEqual({ ok: r.ok, failed: r.failed, errors: r.errors }, { ok: n, failed: 0, errors: [] });
    const ms = r.ms.toSorted((a, b) => a - b);
    t.diagnostic(`${n} links, link to MAIN_INIT p50 ${ms[n >> 1].toFixed(1)} ms, p99 ${ms[Math.floor(n * 0.99)].toFixed(1)} ms, max ${ms[n - 1].toFixed(1)} ms`);
    // The source holds no leftover channel: every link was closed.
    assert.deepEqual(await pair.channels('source', 0), []);
    assert.deepEqual(pageErrors, []);
  } finally {
    await page?.close();
    await pair.stop();
  }
});
