// The two Node engines of the cross-engine conformance test and benchmark
// (tests/tests/three_engines.rs, tests/examples/engines_bench.rs), and the trace reading they
// share. Each engine has the trace runner's shape (js/test/trace-runner.js): a function from
// a setup's JSON to `{ stepJson(now, inputJson): string[], free() }`.
//   package: `livemig/trace`'s TraceEngine (js/dist/trace/, wasm-bindgen, scripts/build-wasm.sh)
//   abi:     the import-free module (scripts/build-wasm-abi.sh) under tests/abi-node/host.mjs
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AbiModule, defaultModulePath } from '../abi-node/host.mjs';

export const ENGINES = ['package', 'abi'];

/** A missing build artefact: the message says which script builds it. */
export class MissingArtefact extends Error {
  constructor(path, script) {
    super(`${path} is missing: build it with ${script}`);
    this.name = 'MissingArtefact';
  }
}

/** The engine factory of `name`; `module` is the wasm-abi module's path (for `abi`). */
export async function loadEngine(name, { module = defaultModulePath() } = {}) {
  if (name === 'package') {
    const wasm = fileURLToPath(new URL('../../js/dist/trace/livemig_wasm_bg.wasm', import.meta.url));
    if (!existsSync(wasm)) throw new MissingArtefact(wasm, 'scripts/build-wasm.sh');
    const { TraceEngine } = await import('../../js/src/trace-node.js');
    return (setup) => new TraceEngine(setup);
  }
  if (name === 'abi') {
    if (!existsSync(module)) throw new MissingArtefact(module, 'scripts/build-wasm-abi.sh');
    const abi = AbiModule.load(module);
    return (setup) => abi.engine(setup);
  }
  throw new Error(`unknown engine ${name}; engines: ${ENGINES.join(', ')}`);
}

/** A trace file: its setup's JSON and its records `{ line, now, input }` (input as JSON). */
export function readTrace(path) {
  const lines = readFileSync(path, 'utf8').split('\n');
  const setup = JSON.stringify(JSON.parse(lines[0]).setup);
  const records = [];
  lines.forEach((text, i) => {
    if (i === 0 || text.trim() === '') return;
    const { now, input } = JSON.parse(text);
    records.push({ line: i + 1, now, input: JSON.stringify(input) });
  });
  return { setup, records };
}
