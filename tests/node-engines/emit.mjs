// Print what a Node engine answers for every input of the given traces, not a comparison:
// tests/tests/three_engines.rs compares it with the other engines and the traces.
//
//   node tests/node-engines/emit.mjs package|abi [--module WASM] TRACE.jsonl...
//
// One JSON line per record: {"trace":PATH,"line":N,"actions":[TEXT,...]} with each action's
// JSON text exactly as the engine returned it, or {"trace":PATH,"line":N,"error":MESSAGE}
// (the rest of that trace is skipped). Exit 2 on a usage error or a missing artefact.
import { ENGINES, loadEngine, readTrace } from './engines.mjs';

const args = process.argv.slice(2);
const name = args.shift();
let module;
if (args[0] === '--module') {
  args.shift();
  module = args.shift();
}
if (!ENGINES.includes(name) || args.length === 0) {
  console.error(`usage: emit.mjs ${ENGINES.join('|')} [--module WASM] TRACE.jsonl...`);
  process.exit(2);
}

let makeEngine;
try {
  makeEngine = await loadEngine(name, { module });
} catch (e) {
  console.error(`${name}: ${e.message}`);
  process.exit(2);
}

const out = [];
for (const path of args) {
  const { setup, records } = readTrace(path);
  let engine;
  try {
    engine = makeEngine(setup);
    for (const r of records) {
      let actions;
      try {
        actions = engine.stepJson(r.now, r.input);
      } catch (e) {
        out.push(JSON.stringify({ trace: path, line: r.line, error: `${e.name}: ${e.message}` }));
        break;
      }
      out.push(JSON.stringify({ trace: path, line: r.line, actions }));
    }
  } catch (e) {
    out.push(JSON.stringify({ trace: path, line: 1, error: `${e.name}: ${e.message}` }));
  } finally {
    engine?.free();
  }
}
process.stdout.write(`${out.join('\n')}\n`);
