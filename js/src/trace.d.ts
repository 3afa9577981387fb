/// <reference lib="esnext.disposable" />
// (wasm-bindgen declares [Symbol.dispose]() on the classes in dist/.)
// Types of `livemig/trace`: the conformance engine (a separate, larger wasm module holding
// every traceable machine and JSON). Inputs and actions are JSON text in the trace format.
import type { ErrorCode } from '../dist/trace/livemig_wasm.js';

export type { ErrorCode } from '../dist/trace/livemig_wasm.js';

/** Every error this package throws on purpose: a JS Error with a stable `code`. */
export interface LivemigError extends Error {
  readonly name: 'LivemigError';
  readonly code: ErrorCode;
}

/** Whether `e` is a {@link LivemigError} (anything else thrown is a bug). */
export function isLivemigError(e: unknown): e is LivemigError;

/** Any traceable machine (orchestrator, source_host, destination_host, spice_session). */
export class TraceEngine {
  /**
   * A fresh machine for a trace header's `setup` (JSON text:
   * `{"machine": ..., "config": ...}`). Throws `invalid_json`, `unknown_machine` or
   * `invalid_config`.
   */
  constructor(setupJson: string);
  /**
   * Feed one input (JSON text) at `now` (milliseconds); returns the canonical JSON of each
   * action it produced, in order. Throws `invalid_time`, `invalid_json`, `invalid_input`
   * or `freed`.
   */
  stepJson(now: number, inputJson: string): string[];
  /** Release the engine's wasm memory now (also done on garbage collection). */
  free(): void;
}

/** The trace format version this build reads and writes. */
export function traceVersion(): number;
