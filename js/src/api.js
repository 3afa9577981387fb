// The public classes over the wasm-bindgen bindings. The entry points (index.js for
// browsers, node.js for Node) load the module before this file's classes are used.
import * as raw from '../dist/livemig_wasm.js';
import { fail, isLivemigError, checkNow } from './errors.js';

export { isLivemigError };

/** Deepest nesting an input or a configuration may have (they need about 6). */
const MAX_DEPTH = 64;

/**
 * A plain-data copy of `value`, made in JS before anything reaches the wasm: getters, proxies
 * and cycles run (or fail) here, so no JS code runs while the machine converts the value.
 * Byte buffers (Uint8Array, other views, ArrayBuffer) become fresh Uint8Array views without
 * copying their bytes.
 */
function plain(value, code, depth = 0) {
  if (depth > MAX_DEPTH) throw fail(code, `nested deeper than ${MAX_DEPTH} levels`);
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'undefined':
    case 'bigint':
      return value;
    case 'object':
      break;
    default:
      throw fail(code, `a ${typeof value} is not data`);
  }
  if (value === null) return null;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) {
    return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }
  if (Array.isArray(value)) return Array.from(value, (v) => plain(v, code, depth + 1));
  const out = {};
  for (const key of Object.keys(value)) out[key] = plain(value[key], code, depth + 1);
  return out;
}

/** `plain` with any foreign exception (a throwing getter, a revoked proxy) as `code`. */
function data(value, code) {
  try {
    return plain(value, code);
  } catch (e) {
    if (isLivemigError(e)) throw e;
    throw fail(code, `not plain data: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** The drive-loop contract shared by both machines. */
class Machine {
  #raw;

  constructor(Raw, config) {
    const copy = data(config, 'invalid_config');
    this.#raw = new Raw(copy);
  }

  #live() {
    if (this.#raw === undefined) throw fail('freed', 'this machine was freed');
    return this.#raw;
  }

  handle(now, input) {
    const m = this.#live();
    checkNow(now);
    const copy = data(input, 'invalid_input');
    m.handle(now, copy);
  }

  pollAction() {
    const m = this.#live();
    return m.pollAction();
  }

  pollTimeout() {
    const m = this.#live();
    return m.pollTimeout();
  }

  step(now, input) {
    this.handle(now, input);
    const actions = [];
    for (let a = this.pollAction(); a !== undefined; a = this.pollAction()) actions.push(a);
    return actions;
  }

  free() {
    const m = this.#raw;
    this.#raw = undefined;
    m?.free();
  }
}

export class MigrationOrchestrator extends Machine {
  constructor(config) {
    super(raw.MigrationOrchestrator, config);
  }
}

export class SpiceSession extends Machine {
  constructor(config) {
    super(raw.SpiceSession, config);
  }
}

export function traceVersion() {
  return raw.traceVersion();
}
