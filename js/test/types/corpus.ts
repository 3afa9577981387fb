// The trace corpus typed with the package's generated types: test/typecheck.test.js writes
// every orchestrator and SPICE session trace as a constant of these types and runs tsc, so
// the types accept exactly what the machines really produce and consume.
import type {
  OrchestratorAction,
  OrchestratorConfig,
  OrchestratorInput,
  SessionAction,
  SessionConfig,
  SessionInput,
} from 'livemig';

/** The trace (JSON) form of an object API value: byte strings are base64 text. */
export type JsonForm<T> = T extends Uint8Array
  ? string
  : T extends readonly (infer U)[]
    ? JsonForm<U>[]
    : T extends object
      ? { [K in keyof T]: JsonForm<T[K]> }
      : T;

type Header<M extends string, C> = { livemig_trace: 1; setup: { machine: M; config: JsonForm<C> } };
type Rec<I, A> = { now: number; input: JsonForm<I>; actions: JsonForm<A>[] };

export type OrchestratorTrace = [
  Header<'orchestrator', OrchestratorConfig>,
  ...Rec<OrchestratorInput, OrchestratorAction>[],
];
export type SessionTrace = [Header<'spice_session', SessionConfig>, ...Rec<SessionInput, SessionAction>[]];
