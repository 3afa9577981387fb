// TraceEngine: any traceable machine driven by JSON text (the conformance module,
// dist/trace/). The entry points (trace.js, trace-node.js) load the module first.
import * as raw from '../dist/trace/livemig_wasm.js';
import { fail, isLivemigError, checkNow } from './errors.js';

export { isLivemigError };

function text(value, what) {
  if (typeof value !== 'string') {
    throw fail('invalid_json', `${what} must be JSON text (a string), got a ${typeof value}`);
  }
  return value;
}

export class TraceEngine {
  #raw;

  constructor(setupJson) {
    this.#raw = new raw.TraceEngine(text(setupJson, 'the setup'));
  }

  stepJson(now, inputJson) {
    const m = this.#raw;
    if (m === undefined) throw fail('freed', 'this engine was freed');
    checkNow(now);
    return m.stepJson(now, text(inputJson, 'the input'));
  }

  free() {
    const m = this.#raw;
    this.#raw = undefined;
    m?.free();
  }
}

export function traceVersion() {
  return raw.traceVersion();
}
