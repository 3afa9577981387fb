/// <reference lib="esnext.disposable" />
// (wasm-bindgen declares [Symbol.dispose]() on the classes in dist/.)
// Types of `livemig`. The data types (configurations, inputs, actions and everything in them)
// are generated from the Rust types by tsify into dist/livemig_wasm.d.ts at build time, so
// they cannot drift from the core; this file re-exports them (a test checks it re-exports
// every one) and declares the wrapper classes.
import type {
  ChannelRef,
  ChannelType,
  DisplayInit,
  Endpoint,
  ErrorCode,
  OrchestratorAction,
  OrchestratorConfig,
  OrchestratorInput,
  Role,
  SessionAction,
  SessionConfig,
  SessionEvent,
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

// ---- the WebSocket transport (src/transport.js) -----------------------------------------

/** What {@link SpiceClientOptions.urlFor} maps to a WebSocket URL: one `connect` action. */
export interface UrlRequest {
  /** The host, as the configuration, BEGIN or SWITCH_HOST gave it. */
  host: string;
  /** The port to use (the TLS port when `tls`). */
  port: number;
  /** Whether the session chose the server's TLS port. */
  tls: boolean;
  /** The certificate subject the server asked to be verified against, if any (JS cannot). */
  subject: string | null;
  /** The channel this connection carries. */
  channel: ChannelRef;
  /** `source`, or `destination` for a migration target. */
  role: Role;
}

/** The part of a WebSocket the transport uses (the browser's, or the `ws` package's). */
export interface WebSocketLike {
  binaryType: string;
  onopen: ((ev: never) => unknown) | null;
  onmessage: ((ev: never) => unknown) | null;
  onclose: ((ev: never) => unknown) | null;
  send(data: Uint8Array<ArrayBuffer>): void;
  close(): void;
}

/** A WebSocket constructor: `WebSocket` in browsers, `import { WebSocket } from 'ws'` in Node. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** The part of WebCrypto's SubtleCrypto the ticket needs (`crypto.subtle`). */
export interface TicketCrypto {
  importKey(
    format: 'spki',
    keyData: Uint8Array<ArrayBuffer>,
    algorithm: { name: 'RSA-OAEP'; hash: 'SHA-1' },
    extractable: boolean,
    keyUsages: ['encrypt'],
  ): Promise<unknown>;
  encrypt(algorithm: { name: 'RSA-OAEP' }, key: unknown, data: Uint8Array<ArrayBuffer>): Promise<ArrayBuffer>;
}

/** Options of {@link SpiceClient}. Give `url` or `server`. */
export interface SpiceClientOptions {
  /** The first server: `ws://host:port` (its plain port) or `wss://host:port` (its TLS port). */
  url?: string;
  /** The first server as an endpoint, instead of `url`. */
  server?: Endpoint;
  /** The SPICE ticket password (default: none). */
  password?: string;
  /** Channel types to link besides main (default: every channel the server lists). */
  channelTypes?: ChannelType[];
  /** Prefer a server's TLS port (default: whether the first server was given by TLS port). */
  preferTls?: boolean;
  /** The rest of the session's configuration. */
  session?: {
    migrate_connect_timeout_ms?: number;
    max_buffered?: number;
    display_init?: DisplayInit | null;
  };
  /** The WebSocket constructor (default: `globalThis.WebSocket`; Node 20 has none). */
  WebSocket?: WebSocketConstructor;
  /** Maps each connection to a URL (default {@link defaultUrl}): e.g. through a proxy. */
  urlFor?: (request: UrlRequest) => string;
  /**
   * May the session follow a migration to `target`? (default: only to the first server's
   * host). A refusal, or a rejected promise, makes the session tell the source it cannot
   * connect, and it stays there.
   */
  allowTarget?: (target: Endpoint) => boolean | Promise<boolean>;
  /** WebCrypto for the ticket (default: `globalThis.crypto.subtle`). */
  subtle?: TicketCrypto;
  /** The session's clock in ms (default: `performance.now()`). */
  now?: () => number;
  /**
   * Every event of the session, in order. It may call `send` and `close`; an exception thrown
   * here does not stop the client and is rethrown later (in a microtask).
   */
  onEvent?: (event: SessionEvent) => void;
}

/**
 * A SPICE client over WebSockets that follows migrations: links main, then every channel,
 * encrypts tickets with WebCrypto, and executes everything its {@link SpiceSession} asks.
 * Throws `invalid_config`.
 */
export class SpiceClient {
  constructor(options: SpiceClientOptions);
  /** Resolves with the reason once the session is over. */
  readonly closed: Promise<string>;
  /** Send a message on a channel (held and replayed in order while it switches servers). */
  send(channel: ChannelRef, msgType: number, body: Uint8Array): void;
  /** Close every connection; `closed` resolves. */
  close(): void;
}

/** The default URL mapping: `ws://host:port/`, or `wss://host:port/` for TLS. */
export function defaultUrl(request: UrlRequest): string;

/** SPICE's ticket with WebCrypto: RSA-OAEP (SHA-1) of `password` and a NUL under `publicKey` (DER SPKI). */
export function encryptTicket(subtle: TicketCrypto, publicKey: Uint8Array<ArrayBuffer>, password: string): Promise<Uint8Array<ArrayBuffer>>;
