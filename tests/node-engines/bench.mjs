// The Node half of examples/engines_bench.rs: events per second over the given traces for
// both Node engines (engines.mjs), and the modules' compile and instantiation times. Prints
// one JSON object (the example prints the table).
//
//   node tests/node-engines/bench.mjs --module WASM TRACE.jsonl...
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { AbiModule } from '../abi-node/host.mjs';
import { loadEngine, readTrace } from './engines.mjs';

const args = process.argv.slice(2);
if (args[0] !== '--module' || args.length < 3) {
  console.error('usage: bench.mjs --module WASM TRACE.jsonl...');
  process.exit(2);
}
const [, abiPath, ...paths] = args;
const traces = paths.map(readTrace);
const events = traces.reduce((n, t) => n + t.records.length, 0);

/** Median milliseconds of `f` over `n` runs (awaited one after the other). */
async function median(n, f) {
  const times = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await f(i);
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[n >> 1];
}

/** Events per second of the fastest round of the whole corpus (engines made outside the
 * timer), over at least 1 s of stepping and 5 rounds, as engines_bench.rs does natively. */
function rate(makeEngine) {
  let spent = 0;
  let rounds = 0;
  let best = Infinity;
  while (spent < 1000 || rounds < 5) {
    const engines = traces.map((t) => makeEngine(t.setup));
    const t0 = performance.now();
    traces.forEach((t, i) => {
      for (const r of t.records) engines[i].stepJson(r.now, r.input);
    });
    const t = performance.now() - t0;
    spent += t;
    rounds += 1;
    best = Math.min(best, t);
    for (const e of engines) e.free();
  }
  return events / (best / 1000);
}

// The package's Node entry compiles and instantiates its module when first imported.
const t0 = performance.now();
const packageEngine = await loadEngine('package');
const packageImportMs = performance.now() - t0;
const abiEngine = await loadEngine('abi', { module: abiPath });

const abiBytes = readFileSync(abiPath);
const packageBytes = readFileSync(new URL('../../js/dist/trace/livemig_wasm_bg.wasm', import.meta.url));
const abiModule = await WebAssembly.compile(abiBytes);
const abi = new AbiModule(abiModule);
const setup = traces[0].setup;

const out = {
  node: process.version,
  events,
  package_events_per_s: rate(packageEngine),
  abi_events_per_s: rate(abiEngine),
  abi_compile_ms: await median(5, () => WebAssembly.compile(abiBytes)),
  abi_instantiate_ms: await median(200, () => WebAssembly.instantiate(abiModule, {})),
  abi_engine_ms: await median(200, () => abi.engine(setup).free()),
  package_compile_ms: await median(5, () => WebAssembly.compile(packageBytes)),
  package_import_ms: packageImportMs,
  package_engine_ms: await median(200, () => packageEngine(setup).free()),
};
console.log(JSON.stringify(out));
