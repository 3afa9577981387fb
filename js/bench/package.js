// The npm package's bench (issue 5, BENCHMARKS.md "npm package (issue 5)"). Prints markdown:
//
// 1. the size of everything the package ships (package.json "files"), raw and gzip -9, per
//    file, per entry point (the files each `exports` entry loads) and in total, naming the
//    toolchain route of dist/build-info.json;
// 2. events per second across the JS boundary (the object API: handle + draining
//    pollAction) replaying the trace corpus (migration, spice, real), against the native
//    core on the same inputs (tests/examples/package_bench_native.rs, spawned with cargo);
// 3. SPICE framing through the package: a SpiceSession linked by replaying the real QEMU
//    trace until its display channel is ready, then pass-through display messages fed as
//    `received` inputs in three shapes, next to a Uint8Array.set memcpy of the same chunks in
//    this process and the native Session's figures.
//
//   node js/bench/package.js              (or `npm run bench` in js/)
//   node js/bench/package.js --no-native  (Node figures only)
//
// The native half runs `cargo run --release -p livemig-tests --example package_bench_native
// -- --json` from the repository root (CARGO_TARGET_DIR is honoured). Any replay giving other
// actions than its trace, or a framing pass losing a message, fails the run.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { gzipSync, constants as zc } from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import * as livemig from 'livemig';
import { corpus, records, inputFromJsonForm } from '../test/corpus.js';

const pkgDir = new URL('../', import.meta.url);
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const args = new Set(process.argv.slice(2));
if (args.has('--help') || args.has('-h')) {
  console.log('usage: node js/bench/package.js [--no-native]   (prints markdown tables)');
  process.exit(0);
}
const BUDGET_MS = 2000;

/** Fail loudly: the figures would be meaningless. */
function check(ok, message) {
  if (!ok) {
    console.error(`bench failed: ${message}`);
    process.exit(1);
  }
}

const fmtInt = (n) => Math.round(n).toLocaleString('en-US');
const fmtM = (n) => `${(n / 1e6).toFixed(3)} M`;
const fmtE = (n) => n.toExponential(2).replace('e+', 'e');

// ---- 1. sizes ----------------------------------------------------------------------------

const pkg = JSON.parse(readFileSync(new URL('package.json', pkgDir), 'utf8'));
const buildInfo = JSON.parse(readFileSync(new URL('dist/build-info.json', pkgDir), 'utf8'));

/** Every file under the package's "files" entries, relative, sorted. */
function shippedFiles() {
  const out = [];
  const walk = (rel) => {
    const st = statSync(new URL(rel, pkgDir));
    if (st.isDirectory()) {
      for (const e of readdirSync(new URL(rel, pkgDir))) walk(`${rel}/${e}`);
    } else out.push(rel);
  };
  for (const f of pkg.files) walk(f);
  return [...new Set(out)].sort();
}

/** The files `entry` loads: static and dynamic relative imports, and `new URL(...)` reads. */
function closure(entry) {
  const seen = new Set();
  const visit = (rel) => {
    if (seen.has(rel)) return;
    seen.add(rel);
    if (!rel.endsWith('.js')) return;
    const text = readFileSync(new URL(rel, pkgDir), 'utf8');
    const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|new URL\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g;
    for (const m of text.matchAll(re)) {
      const dir = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/') + 1) : '';
      const target = new URL(m[1], new URL(dir, pkgDir)).href.slice(pkgDir.href.length);
      visit(target);
    }
  };
  visit(entry.replace(/^\.\//, ''));
  return [...seen].sort();
}

function sizes() {
  const files = shippedFiles();
  const size = new Map();
  for (const f of files) {
    const buf = readFileSync(new URL(f, pkgDir));
    size.set(f, { raw: buf.length, gz: gzipSync(buf, { level: zc.Z_BEST_COMPRESSION }).length });
  }
  const sum = (list) =>
    list.reduce((a, f) => ({ raw: a.raw + size.get(f).raw, gz: a.gz + size.get(f).gz }), { raw: 0, gz: 0 });
  const lines = [];
  lines.push(
    `Route: \`${buildInfo.route}\` (${buildInfo.rustc}, wasm-bindgen ${buildInfo.wasm_bindgen}, ` +
      `${buildInfo.wasm_opt}, profile ${buildInfo.profile}), from js/dist/build-info.json.`,
  );
  lines.push('');
  lines.push('| shipped file | raw B | gzip -9 B |');
  lines.push('|---|---:|---:|');
  for (const f of files) lines.push(`| ${f} | ${fmtInt(size.get(f).raw)} | ${fmtInt(size.get(f).gz)} |`);
  const total = sum(files);
  lines.push(`| **all ${files.length} files** | **${fmtInt(total.raw)}** | **${fmtInt(total.gz)}** |`);
  lines.push('');

  // What each entry point loads at run time (types excluded), from the exports map.
  lines.push('| entry point (exports condition) | files loaded | raw B | gzip -9 B |');
  lines.push('|---|---:|---:|---:|');
  const entries = [];
  for (const [sub, target] of Object.entries(pkg.exports)) {
    if (typeof target === 'string') continue;
    for (const [cond, file] of Object.entries(target)) {
      if (cond === 'types') continue;
      entries.push([`\`${sub === '.' ? 'livemig' : `livemig/${sub.slice(2)}`}\` (${cond})`, file]);
    }
  }
  const entryRows = entries.map(([label, file]) => {
    const list = closure(file);
    for (const f of list) check(size.has(f), `${file} loads ${f}, which the package does not ship`);
    return [label, list, sum(list)];
  });
  for (const [label, list, s] of entryRows) {
    lines.push(`| ${label} | ${list.length} | ${fmtInt(s.raw)} | ${fmtInt(s.gz)} |`);
  }
  lines.push('');

  // Dominance.
  const wasm = files.filter((f) => f.endsWith('.wasm'));
  const types = files.filter((f) => f.endsWith('.d.ts'));
  const js = files.filter((f) => f.endsWith('.js'));
  const other = files.filter((f) => !wasm.includes(f) && !types.includes(f) && !js.includes(f));
  lines.push('| kind | files | raw B | gzip -9 B | share of gzip total |');
  lines.push('|---|---:|---:|---:|---:|');
  for (const [kind, list] of [
    ['wasm modules', wasm],
    ['JS (src + wasm-bindgen glue)', js],
    ['TypeScript declarations', types],
    ['other (build-info.json)', other],
  ]) {
    const s = sum(list);
    lines.push(
      `| ${kind} | ${list.length} | ${fmtInt(s.raw)} | ${fmtInt(s.gz)} | ${((100 * s.gz) / total.gz).toFixed(1)} % |`,
    );
  }
  const main = size.get('dist/livemig_wasm_bg.wasm');
  const nodeMain = entryRows.find(([label]) => label === '`livemig` (node)');
  lines.push('');
  lines.push(
    `The package module dist/livemig_wasm_bg.wasm: ${fmtInt(main.raw)} B raw, ${fmtInt(main.gz)} B gzipped ` +
      `(${main.gz < 100_000 ? 'under' : 'over'} the 100 KB target)` +
      (nodeMain ? `, ${((100 * main.gz) / nodeMain[2].gz).toFixed(0)} % of what \`import 'livemig'\` loads in Node (gzipped).` : '.'),
  );

  // npm's own view of the tarball, when npm is there.
  const pack = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: fileURLToPath(pkgDir),
    encoding: 'utf8',
  });
  if (pack.status === 0) {
    try {
      const [info] = JSON.parse(pack.stdout);
      lines.push(
        `\`npm pack\` tarball: ${fmtInt(info.size)} B for ${info.entryCount} entries ` +
          `(${fmtInt(info.unpackedSize)} B unpacked; npm adds package.json).`,
      );
    } catch {
      // not fatal: the table above is the figure
    }
  }
  return lines.join('\n');
}

// ---- 2. events per second across the boundary ----------------------------------------------

const GROUPS = ['migration', 'spice', 'real'];

function loadGroups() {
  const all = corpus();
  return GROUPS.map((group) => {
    const traces = all
      .filter((t) => t.name.startsWith(`${group}/`))
      .map((t) => {
        const recs = records(t.text);
        return {
          name: t.name,
          machine: t.header.setup.machine,
          config: t.header.setup.config,
          // Pre-converted to the object form outside the timed loop.
          steps: recs.map((r) => ({ now: r.now, input: inputFromJsonForm(r.input) })),
          actions: recs.reduce((n, r) => n + r.actions.length, 0),
        };
      });
    check(traces.length > 0, `no traces in tests/traces/${group}`);
    return { group, traces };
  });
}

function makeMachine(t) {
  switch (t.machine) {
    case 'orchestrator':
      return new livemig.MigrationOrchestrator(t.config);
    case 'spice_session':
      return new livemig.SpiceSession(t.config);
    default:
      throw new Error(`${t.name}: machine ${t.machine} is not in the package`);
  }
}

/** As package_bench_native.rs: rounds of `reps` replays of every trace on fresh machines
 * made before the timer, at least BUDGET_MS of replaying and 5 rounds, the fastest round. */
function groupRate({ group, traces }) {
  const inputs = traces.reduce((n, t) => n + t.steps.length, 0);
  const actions = traces.reduce((n, t) => n + t.actions, 0);
  const reps = Math.max(1, Math.floor(30_000 / inputs));
  let spent = 0;
  let rounds = 0;
  let best = Infinity;
  while (spent < BUDGET_MS || rounds < 5) {
    const machines = [];
    for (let r = 0; r < reps; r++) for (const t of traces) machines.push(makeMachine(t));
    let produced = 0;
    const t0 = performance.now();
    for (let i = 0; i < machines.length; i++) {
      const m = machines[i];
      const steps = traces[i % traces.length].steps;
      for (let j = 0; j < steps.length; j++) {
        m.handle(steps[j].now, steps[j].input);
        while (m.pollAction() !== undefined) produced += 1;
      }
    }
    const took = performance.now() - t0;
    for (const m of machines) m.free();
    check(produced === actions * reps, `${group}: ${produced} actions, the traces hold ${actions * reps}`);
    spent += took;
    rounds += 1;
    best = Math.min(best, took);
  }
  return { group, traces: traces.length, inputs, actions, eventsPerSec: (inputs * reps) / (best / 1000), rounds, reps };
}

// ---- 3. SPICE framing through the package ------------------------------------------------

const le32 = (b, o) => b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] * 2 ** 24);
const concat = (parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};
/** The first common caps word of a link message (fixed 18) or reply (fixed 178) after the
 * 16-byte SpiceLinkHeader: counts at `countsAt`, caps_offset after both counts. */
function commonCaps(buf, countsAt) {
  check(buf.length >= 16 && le32(buf, 0) === 0x51444552, 'not a SPICE link message (magic REDQ)');
  const numCommon = le32(buf, 16 + countsAt);
  const capsOffset = le32(buf, 16 + countsAt + 8);
  return numCommon === 0 ? 0 : le32(buf, 16 + capsOffset);
}
const MINI_HEADER = 1 << 3;

/** Replay the real trace until the display channel is ready (as package_bench_native.rs). */
function linkDisplay() {
  const real = corpus().find((t) => t.name === 'real/qemu-seamless-4ch.jsonl');
  check(real !== undefined, 'tests/traces/real/qemu-seamless-4ch.jsonl is missing');
  const session = new livemig.SpiceSession(real.header.setup.config);
  let display;
  const sent = [];
  const got = [];
  for (const rec of records(real.text)) {
    const input = inputFromJsonForm(rec.input);
    session.handle(rec.now, input);
    let ready = false;
    for (let a = session.pollAction(); a !== undefined; a = session.pollAction()) {
      if (a.type === 'connect' && a.channel.type === 'display' && display === undefined) display = a.conn;
      else if (a.type === 'transmit' && a.conn === display) sent.push(a.bytes);
      else if (a.type === 'event' && a.event === 'channel_ready' && a.channel.type === 'display') ready = true;
    }
    if (input.type === 'received' && input.conn === display) got.push(input.bytes);
    if (ready) {
      // SpiceLinkMess: connection_id u32, type u8, id u8, then the counts (offset 6);
      // SpiceLinkReply: error u32, pub_key[162], then the counts (offset 166).
      const client = commonCaps(concat(sent), 6);
      const server = commonCaps(concat(got), 166);
      const mini = (client & MINI_HEADER) !== 0 && (server & MINI_HEADER) !== 0;
      return { session, display, mini, now: rec.now };
    }
  }
  check(false, 'the display channel never became ready');
}

/** `messages` display messages (types 101..=107 in turn) of `bodyLen` bytes; chunks of
 * `chunk` bytes, or one message per chunk. */
function shape(name, mini, bodyLen, messages, chunk) {
  const headerLen = mini ? 6 : 18;
  const wire = new Uint8Array((headerLen + bodyLen) * messages);
  const body = Uint8Array.from({ length: bodyLen }, (_, i) => i & 0xff);
  const view = new DataView(wire.buffer);
  const ends = [];
  let o = 0;
  for (let i = 0; i < messages; i++) {
    const type = 101 + (i % 7);
    if (mini) {
      view.setUint16(o, type, true);
      view.setUint32(o + 2, bodyLen, true);
    } else {
      view.setBigUint64(o, BigInt(i + 1), true);
      view.setUint16(o + 8, type, true);
      view.setUint32(o + 10, bodyLen, true);
      view.setUint32(o + 14, 0, true);
    }
    wire.set(body, o + headerLen);
    o += headerLen + bodyLen;
    ends.push(o);
  }
  let chunkEnds = ends;
  if (chunk !== undefined) {
    chunkEnds = [];
    for (let e = chunk; ; e += chunk) {
      chunkEnds.push(Math.min(e, wire.length));
      if (e >= wire.length) break;
    }
  }
  const chunks = [];
  let prev = 0;
  for (const e of chunkEnds) {
    chunks.push(wire.subarray(prev, e));
    prev = e;
  }
  return { name, wire, chunks, messages, bodyBytes: bodyLen * messages };
}

/** Passes per second of the fastest of at least 3 passes and BUDGET_MS (one warm-up). */
function bestPass(f) {
  f();
  let spent = 0;
  let passes = 0;
  let best = Infinity;
  while (spent < BUDGET_MS || passes < 3) {
    const t0 = performance.now();
    f();
    const took = performance.now() - t0;
    spent += took;
    passes += 1;
    best = Math.min(best, took);
  }
  return 1000 / best;
}

function framing() {
  const linked = linkDisplay();
  const shapes = [
    shape('small 32 B, 64 KiB chunks', linked.mini, 32, 200_000, 64 << 10),
    shape('large 64 KiB, 64 KiB chunks', linked.mini, 64 << 10, 128, 64 << 10),
    shape('32 B, one message per chunk', linked.mini, 32, 200_000, undefined),
  ];
  const { session, display, now } = linked;
  const rows = [];
  for (const s of shapes) {
    // Pre-converted object-form inputs, outside the timed loop.
    const inputs = s.chunks.map((bytes) => ({ type: 'received', conn: display, bytes }));
    const sessionRate = bestPass(() => {
      let messages = 0;
      let bodyBytes = 0;
      for (let i = 0; i < inputs.length; i++) {
        session.handle(now, inputs[i]);
        for (let a = session.pollAction(); a !== undefined; a = session.pollAction()) {
          if (a.type === 'event' && a.event === 'message' && a.msg_type >= 101 && a.msg_type <= 107) {
            messages += 1;
            bodyBytes += a.body.length;
          } else check(false, `${s.name}: unexpected action ${JSON.stringify(a)}`);
        }
      }
      check(
        messages === s.messages && bodyBytes === s.bodyBytes,
        `${s.name}: ${messages} message events (${bodyBytes} body bytes) for ${s.messages} messages (${s.bodyBytes}) fed`,
      );
    });
    const rx = new Uint8Array(64 << 10);
    const memcpyRate = bestPass(() => {
      for (let i = 0; i < s.chunks.length; i++) rx.set(s.chunks[i]);
      check(rx[0] !== undefined, 'memcpy');
    });
    rows.push({ shape: s, sessionRate, memcpyRate });
  }
  session.free();
  return { display, mini: linked.mini, rows };
}

// ---- native half ---------------------------------------------------------------------------

function native() {
  if (args.has('--no-native')) return undefined;
  const r = spawnSync(
    'cargo',
    ['run', '--release', '-q', '-p', 'livemig-tests', '--example', 'package_bench_native', '--', '--json'],
    { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 },
  );
  check(r.status === 0, `the native bench failed (status ${r.status}${r.error ? `, ${r.error.message}` : ''})`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

// ---- report --------------------------------------------------------------------------------

const nat = native();
const groups = loadGroups().map(groupRate);
const frames = framing();

const out = [];
out.push(
  `Node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} cores), ` +
    `package built by route \`${buildInfo.route}\`.`,
);
out.push('');
out.push('### What the package ships');
out.push('');
out.push(sizes());
out.push('');
out.push('### Events per second across the JS boundary (object API) against the native core');
out.push('');
out.push('| group | traces | inputs | actions | Node events/s | native events/s | native / Node |');
out.push('|---|---:|---:|---:|---:|---:|---:|');
let jsAll = 0;
let natAll = 0;
let inputsAll = 0;
for (const g of groups) {
  const n = nat?.groups.find((x) => x.group === g.group);
  if (n) check(n.inputs === g.inputs && n.actions === g.actions, `${g.group}: native and Node read other traces`);
  inputsAll += g.inputs;
  jsAll += g.inputs / g.eventsPerSec;
  if (n) natAll += n.inputs / n.events_per_sec;
  out.push(
    `| ${g.group} | ${g.traces} | ${g.inputs} | ${g.actions} | ${fmtM(g.eventsPerSec)} | ` +
      `${n ? fmtM(n.events_per_sec) : '-'} | ${n ? (n.events_per_sec / g.eventsPerSec).toFixed(1) : '-'} |`,
  );
}
out.push(
  `| **all ${groups.reduce((a, g) => a + g.traces, 0)} traces, one replay each** | | ${inputsAll} | | ` +
    `**${fmtM(inputsAll / jsAll)}** | ${nat ? `**${fmtM(inputsAll / natAll)}**` : '-'} | ` +
    `${nat ? (jsAll / natAll).toFixed(1) : '-'} |`,
);
out.push('');
out.push('### SPICE framing through the package (pass-through display messages)');
out.push('');
out.push(
  `Display channel on conn ${frames.display}, ${frames.mini ? 'mini' : 'full'} headers (both link messages advertise ` +
    `${frames.mini ? '' : 'not '}MINI_HEADER); MB = 10^6 wire bytes, headers included.`,
);
out.push('');
out.push('| shape | path | messages/s | MB/s |');
out.push('|---|---|---:|---:|');
for (const { shape: s, sessionRate, memcpyRate } of frames.rows) {
  const n = nat?.framing.find((x) => x.shape === s.name);
  if (n) check(n.wire_bytes === s.wire.length && n.chunks === s.chunks.length, `${s.name}: native fed another stream`);
  if (n) check(nat.header === (frames.mini ? 'Mini' : 'Full'), 'native and Node negotiated other headers');
  const rows = [
    ['Node: SpiceSession handle + pollAction', sessionRate],
    ['Node: memcpy (Uint8Array.set, reused buffer)', memcpyRate],
  ];
  if (n) {
    rows.push(['native: Session::handle + poll_action', n.session_passes_per_sec]);
    rows.push(['native: memcpy (copy_from_slice)', n.memcpy_passes_per_sec]);
  }
  for (const [path, passes] of rows) {
    out.push(`| ${s.name} | ${path} | ${fmtE(passes * s.messages)} | ${fmtInt((passes * s.wire.length) / 1e6)} |`);
  }
}
console.log(out.join('\n'));
