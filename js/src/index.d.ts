/// <reference lib="esnext.disposable" />
// (wasm-bindgen declares [Symbol.dispose]() on the classes in dist/.)
// Types of `livemig`. The data types (configurations, inputs, actions and everything in them)
// are generated from the Rust types by tsify into dist/livemig_wasm.d.ts at build time, so
// they cannot drift from the core; this file re-exports them (a test checks it re-exports
// every one) and declares the wrapper classes.
import type {
  ErrorCode,
  OrchestratorAction,
  OrchestratorConfig,
  OrchestratorInput,
  SessionAction,
  SessionConfig,
  SessionInput,
} from '../dist/livemig_wasm.js';

export type {
  Bytes,
  Call,
  ChannelRef,
  ChannelType,
  ConnId,
  DisplayInit,
  DomainRef,
  DomainState,
  Endpoint,
  ErrorCode,
  Feature,
  FeatureSet,
  Host,
  LinkErr,
  MigrateFlags,
  MigrationKind,
  Millis,
  Mode,
  OrchestratorAction,
  OrchestratorConfig,
  OrchestratorInput,
  ParamValue,
  Params,
  Procedure,
  Protocol,
  ProtocolRequest,
  RemoteError,
  Report,
  Role,
  SessionAction,
  SessionConfig,
  SessionError,
  SessionEvent,
  SessionInput,
  TypedParam,
  Verdict,
  Verify,
} from '../dist/livemig_wasm.js';

/** Every error this package throws on purpose: a JS Error with a stable `code`. */
export interface LivemigError extends Error {
  readonly name: 'LivemigError';
  readonly code: ErrorCode;
}

/** Whether `e` is a {@link LivemigError} (anything else thrown is a bug). */
export function isLivemigError(e: unknown): e is LivemigError;

/**
 * The drive-loop contract of every machine (the core's `Machine` trait): after each
 * `handle`, drain `pollAction` until `undefined`, then wake the machine with a `timeout`
 * input at `pollTimeout()`. Times are milliseconds on a clock the host chooses
 * (`performance.now()` works: fractions are truncated), in 0..=2^53-1.
 */
export interface DriveLoop<Input, Action> {
  /**
   * Feed one input at `now`. Throws `invalid_time` or `invalid_input` (then nothing
   * happened), or `freed`.
   */
  handle(now: number, input: Input): void;
  /** The next pending action, or `undefined` once drained. */
  pollAction(): Action | undefined;
  /** When the machine wants a `timeout` input, or `undefined` if it waits on nothing. */
  pollTimeout(): number | undefined;
  /** `handle`, then every action it produced, in order. */
  step(now: number, input: Input): Action[];
  /** Release the machine's wasm memory now (also done on garbage collection). */
  free(): void;
}

/** The libvirt migration driver (managed or peer-to-peer, v3 or v2). */
export class MigrationOrchestrator implements DriveLoop<OrchestratorInput, OrchestratorAction> {
  /** Throws `invalid_config`. */
  constructor(config: OrchestratorConfig);
  handle(now: number, input: OrchestratorInput): void;
  pollAction(): OrchestratorAction | undefined;
  pollTimeout(): number | undefined;
  step(now: number, input: OrchestratorInput): OrchestratorAction[];
  free(): void;
}

/**
 * A SPICE client session that follows migrations. Bring your own sockets: execute its
 * `connect` / `transmit` / `close` actions and feed back `connected`, `received` (a
 * `Uint8Array`, any chunking) and `closed`.
 */
export class SpiceSession implements DriveLoop<SessionInput, SessionAction> {
  /** Throws `invalid_config`. */
  constructor(config: SessionConfig);
  handle(now: number, input: SessionInput): void;
  pollAction(): SessionAction | undefined;
  pollTimeout(): number | undefined;
  step(now: number, input: SessionInput): SessionAction[];
  free(): void;
}

/** The trace format version this build reads and writes. */
export function traceVersion(): number;
