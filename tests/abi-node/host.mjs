// A second, independent host of the embeddable module (wasm-abi/), written from
// wasm-abi/README.md ("ABI version 1") alone and run under Node's own `WebAssembly` API.
// Plain ESM, no dependency, no code shared with host-native's wasmtime sandbox.
//
// The module is untrusted: every value it returns (version, pointers, lengths, statuses,
// handles, frame counts and lengths, UTF-8) is checked before use, and any failure is an
// `AbiHostError` with a stable `code`. After a trap or an ABI violation the instance is
// dead (README "Traps"): every later call answers `dead`.
//
// Node's WebAssembly has no fuel: CPU is not bounded here (run hostile modules in a Worker
// with a deadline for that). Memory is checked after every call against `maxMemoryBytes`.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The ABI version this host speaks (README "Versioning"). */
export const ABI_VERSION = 1;

/** Status codes of ABI version 1, by value (README "Status codes"). */
export const STATUS_NAMES = Object.freeze([
  'ok', 'bad_buffer', 'not_utf8', 'invalid_json', 'invalid_setup', 'invalid_input',
  'bad_handle', 'too_large', 'exhausted',
]);

/** The function exports of ABI version 1 (plus the memory `memory`). */
export const FUNCTIONS = Object.freeze([
  'lm_abi_version', 'lm_alloc', 'lm_free', 'lm_new', 'lm_step', 'lm_poll_timeout', 'lm_drop',
  'lm_result_ptr', 'lm_result_len',
]);

/** The largest buffer `lm_alloc` hands out (README: `0` above 2^30). */
const MAX_BUFFER = 2 ** 30;
const U64_MAX = 2n ** 64n - 1n;

/**
 * Every error of this host. `code` is one of:
 * `module_missing`, `invalid_module`, `imports`, `missing_export`, `abi_version` (loading);
 * `invalid_argument` (a bad argument from the caller: not text, bad `now`, too large);
 * `guest` (the module answered a status code: `status`, `statusName`; the instance lives on);
 * `alloc_failed` (`lm_alloc` answered 0); `abi_violation` (the module broke the ABI);
 * `trap` (the guest trapped: `cause`); `memory_limit`; `dead` (an earlier trap or
 * violation killed the instance); `freed` (the engine was freed).
 */
export class AbiHostError extends Error {
  constructor(code, message, fields = {}) {
    super(message, fields.cause === undefined ? undefined : { cause: fields.cause });
    this.name = 'AbiHostError';
    this.code = code;
    if (fields.status !== undefined) {
      this.status = fields.status;
      this.statusName = STATUS_NAMES[fields.status];
    }
  }
}

const violation = (message) => new AbiHostError('abi_violation', message);
const utf8 = new TextDecoder('utf-8', { fatal: true });
const lossy = new TextDecoder('utf-8');
const encoder = new TextEncoder();

/**
 * Decode action frames (README "Action frames"): `u32le count`, then per action `u32le len`
 * and `len` bytes of UTF-8 JSON, nothing after the last. Every count and length is checked
 * against the bytes present.
 * @param {Uint8Array} bytes
 * @returns {string[]}
 */
export function decodeFrames(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 4) throw violation(`action frames of ${bytes.length} bytes: no count`);
  const count = view.getUint32(0, true);
  if (count > (bytes.length - 4) / 4) {
    throw violation(`${count} frames cannot fit in ${bytes.length} bytes`);
  }
  const out = [];
  let at = 4;
  for (let i = 0; i < count; i++) {
    if (bytes.length - at < 4) throw violation(`frame ${i}: truncated length`);
    const len = view.getUint32(at, true);
    at += 4;
    if (len > bytes.length - at) {
      throw violation(`frame ${i} claims ${len} bytes, ${bytes.length - at} remain`);
    }
    try {
      out.push(utf8.decode(bytes.subarray(at, at + len)));
    } catch {
      throw violation(`frame ${i} is not UTF-8`);
    }
    at += len;
  }
  if (at !== bytes.length) throw violation(`${bytes.length - at} bytes after the last frame`);
  return out;
}

/**
 * Where scripts/build-wasm-abi.sh writes the module: `$CARGO_TARGET_DIR/wasm-abi/…`
 * (relative to the repository root if relative), else `target/wasm-abi/…`.
 */
export function defaultModulePath() {
  const root = new URL('../../', import.meta.url);
  const dir = process.env.CARGO_TARGET_DIR || 'target';
  return fileURLToPath(new URL(`${dir.replace(/\/?$/, '/')}wasm-abi/livemig_wasm_abi.wasm`, root));
}

/** A compiled, checked module: the factory of engines. */
export class AbiModule {
  #module;

  /** Prefer `load`, `fromBytes` or `compile`. */
  constructor(module, { maxMemoryBytes = 64 * 2 ** 20 } = {}) {
    if (!(module instanceof WebAssembly.Module)) throw new TypeError('a WebAssembly.Module');
    const imports = WebAssembly.Module.imports(module);
    if (imports.length > 0) {
      const names = imports.map((i) => `${i.module}.${i.name} (${i.kind})`).join(', ');
      throw new AbiHostError('imports', `the module imports ${names}; this host provides none`);
    }
    const exports = new Map(WebAssembly.Module.exports(module).map((e) => [e.name, e.kind]));
    for (const [name, kind] of [['memory', 'memory'], ...FUNCTIONS.map((f) => [f, 'function'])]) {
      if (exports.get(name) !== kind) {
        throw new AbiHostError('missing_export', `no ${kind} export \`${name}\``);
      }
    }
    this.#module = module;
    this.maxMemoryBytes = maxMemoryBytes;
  }

  /** Compile a module's bytes synchronously. */
  static fromBytes(bytes, options) {
    return new AbiModule(compileWith(() => new WebAssembly.Module(bytes)), options);
  }

  /** Compile a module's bytes with `WebAssembly.compile`. */
  static async compile(bytes, options) {
    let module;
    try {
      module = await WebAssembly.compile(bytes);
    } catch (e) {
      throw new AbiHostError('invalid_module', `invalid WebAssembly module: ${e.message}`, { cause: e });
    }
    return new AbiModule(module, options);
  }

  /** Read and compile the module file at `path` (default: the build script's output). */
  static load(path = defaultModulePath(), options) {
    let bytes;
    try {
      bytes = readFileSync(path);
    } catch (e) {
      if (e.code === 'ENOENT') {
        throw new AbiHostError('module_missing', `no module at ${path}: build it with scripts/build-wasm-abi.sh`);
      }
      throw new AbiHostError('module_missing', `${path}: ${e.message}`, { cause: e });
    }
    return AbiModule.fromBytes(bytes, options);
  }

  /** A fresh instance (empty import object) driving the machine of a trace setup's JSON. */
  engine(setupJson) {
    let instance;
    try {
      instance = new WebAssembly.Instance(this.#module, {});
    } catch (e) {
      const code = e instanceof WebAssembly.RuntimeError ? 'trap' : 'invalid_module';
      throw new AbiHostError(code, `instantiation failed: ${e.message}`, { cause: e });
    }
    return new AbiEngine(instance, setupJson, this.maxMemoryBytes);
  }
}

function compileWith(compile) {
  try {
    return compile();
  } catch (e) {
    throw new AbiHostError('invalid_module', `invalid WebAssembly module: ${e.message}`, { cause: e });
  }
}

/** One instance driving one machine; usable by js/test/trace-runner.js (`stepJson`, `free`). */
export class AbiEngine {
  #x;
  #memory;
  #maxMemory;
  #handle = 0;
  #state = 'live'; // 'live' | 'dead' | 'freed'

  /** Prefer `AbiModule.engine`. Checks the version before any other call (README "Versioning"). */
  constructor(instance, setupJson, maxMemoryBytes) {
    this.#x = instance.exports;
    this.#memory = instance.exports.memory;
    this.#maxMemory = maxMemoryBytes;
    const version = this.#call('lm_abi_version');
    if (version !== ABI_VERSION) {
      this.#state = 'dead';
      throw new AbiHostError('abi_version', `the module speaks ABI version ${version}; this host speaks ${ABI_VERSION}`);
    }
    const [ptr, len] = this.#put(setupJson, 'the setup');
    const h = this.#call('lm_new', ptr, len);
    const result = this.#result();
    this.#release(ptr, len);
    if (h >= 1) {
      this.#handle = h;
      return;
    }
    this.#state = 'dead'; // no machine: nothing to keep the instance for
    throw this.#status(-h, result, 'lm_new');
  }

  /** Feed one input (JSON text) at `now` ms; the canonical JSON of each action. */
  stepJson(now, inputJson) {
    this.#live();
    const t = millis(now);
    const [ptr, len] = this.#put(inputJson, 'the input');
    const status = this.#call('lm_step', this.#handle, t, ptr, len);
    const result = this.#result();
    this.#release(ptr, len);
    if (status !== 0) throw this.#status(status, result, 'lm_step');
    return this.#guard(() => decodeFrames(result));
  }

  /** The machine's next deadline in ms (a bigint), or null for none. */
  pollTimeout() {
    this.#live();
    const status = this.#call('lm_poll_timeout', this.#handle);
    const result = this.#result();
    if (status !== 0) throw this.#status(status, result, 'lm_poll_timeout');
    if (result.length === 0) return null;
    if (result.length !== 8) throw this.#kill(violation(`lm_poll_timeout result of ${result.length} bytes`));
    return new DataView(result.buffer).getBigUint64(0, true);
  }

  /** Release the machine (`lm_drop`) and the instance. Never throws: usable in `finally`. */
  free() {
    if (this.#state === 'live') {
      try {
        this.#call('lm_drop', this.#handle);
      } catch {
        // A failed drop leaves nothing to release: the instance goes away with this engine.
      }
    }
    this.#state = 'freed';
    this.#x = undefined;
    this.#memory = undefined;
  }

  /** Whether a trap or an ABI violation killed the instance. */
  get dead() {
    return this.#state === 'dead';
  }

  #live() {
    if (this.#state === 'freed') throw new AbiHostError('freed', 'this engine was freed');
    if (this.#state === 'dead') {
      throw new AbiHostError('dead', 'this instance trapped or broke the ABI earlier; create a new engine');
    }
  }

  #kill(error) {
    this.#state = 'dead';
    return error;
  }

  #guard(f) {
    try {
      return f();
    } catch (e) {
      throw e instanceof AbiHostError && e.code === 'abi_violation' ? this.#kill(e) : e;
    }
  }

  /** Call an export; its i32 result as a JS number (signed). Traps kill the instance. */
  #call(name, ...args) {
    let r;
    try {
      r = this.#x[name](...args);
    } catch (e) {
      // A signature other than the ABI's makes the JS-API conversion throw a TypeError.
      if (e instanceof TypeError) throw this.#kill(violation(`calling \`${name}\`: ${e.message}`));
      throw this.#kill(new AbiHostError('trap', `\`${name}\` trapped: ${e.message}`, { cause: e }));
    }
    const size = this.#memory.buffer.byteLength;
    if (size > this.#maxMemory) {
      throw this.#kill(new AbiHostError('memory_limit', `the guest's memory grew to ${size} bytes, the limit is ${this.#maxMemory}`));
    }
    if (typeof r !== 'number' || !Number.isInteger(r)) {
      throw this.#kill(violation(`\`${name}\` returned ${typeof r} ${String(r)}, not an i32`));
    }
    return r;
  }

  /** Copy `text` into a fresh guest buffer: [pointer, length]. */
  #put(text, what) {
    if (typeof text !== 'string') {
      throw new AbiHostError('invalid_argument', `${what} must be JSON text (a string), got a ${typeof text}`);
    }
    const bytes = encoder.encode(text);
    if (bytes.length > MAX_BUFFER) {
      throw new AbiHostError('invalid_argument', `${what} has ${bytes.length} bytes; the ABI takes at most ${MAX_BUFFER}`);
    }
    const ptr = this.#call('lm_alloc', bytes.length) >>> 0;
    if (ptr === 0) throw new AbiHostError('alloc_failed', `lm_alloc(${bytes.length}) failed`);
    const memory = new Uint8Array(this.#memory.buffer);
    if (ptr + bytes.length > memory.length) {
      throw this.#kill(violation(`lm_alloc(${bytes.length}) returned ${ptr}, outside the guest's ${memory.length} bytes`));
    }
    memory.set(bytes, ptr);
    return [ptr, bytes.length];
  }

  #release(ptr, len) {
    const status = this.#call('lm_free', ptr, len);
    if (status !== 0) throw this.#kill(violation(`lm_free(${ptr}, ${len}) answered ${status}`));
  }

  /** A copy of the result buffer, bounds-checked against the memory as it is now. */
  #result() {
    const ptr = this.#call('lm_result_ptr') >>> 0;
    const len = this.#call('lm_result_len') >>> 0;
    const memory = new Uint8Array(this.#memory.buffer);
    if (ptr + len > memory.length) {
      throw this.#kill(violation(`result of ${len} bytes at ${ptr} is outside the guest's ${memory.length} bytes`));
    }
    return memory.slice(ptr, ptr + len);
  }

  /** The error of a non-zero status: `guest` for a known code, else a violation. */
  #status(status, result, name) {
    if (status >= 1 && status < STATUS_NAMES.length) {
      return new AbiHostError('guest', `${name}: ${STATUS_NAMES[status]} (${status}): ${lossy.decode(result)}`, { status });
    }
    return this.#kill(violation(`${name} answered status ${status}, not a status of ABI version ${ABI_VERSION}`));
  }
}

/** `now` as the ABI's i64: a non-negative integer number (up to 2^53-1) or bigint (u64). */
function millis(now) {
  if (typeof now === 'number' && Number.isSafeInteger(now) && now >= 0) return BigInt(now);
  if (typeof now === 'bigint' && now >= 0n && now <= U64_MAX) return BigInt.asIntN(64, now);
  throw new AbiHostError('invalid_argument', `now must be a non-negative integer of milliseconds, got ${String(now)}`);
}
