// Type-level tests of the public API (checked by tsc in test/typecheck.test.js, never run).
import {
  MigrationOrchestrator,
  SpiceClient,
  SpiceSession,
  defaultUrl,
  encryptTicket,
  isLivemigError,
  traceVersion,
  type Endpoint,
  type ErrorCode,
  type LivemigError,
  type OrchestratorAction,
  type OrchestratorConfig,
  type OrchestratorInput,
  type SessionAction,
  type SessionConfig,
  type SessionEvent,
  type SessionInput,
} from 'livemig';
import { TraceEngine, traceVersion as traceVersion2 } from 'livemig/trace';

type IsAny<T> = 0 extends 1 & T ? true : false;
type NotAny<T> = IsAny<T> extends true ? false : true;
type Assert<T extends true> = T;

export type Checks = [
  Assert<NotAny<SessionInput>>,
  Assert<NotAny<SessionAction>>,
  Assert<NotAny<SessionConfig>>,
  Assert<NotAny<SessionEvent>>,
  Assert<NotAny<OrchestratorInput>>,
  Assert<NotAny<OrchestratorAction>>,
  Assert<NotAny<OrchestratorConfig>>,
  Assert<NotAny<Parameters<SpiceSession['handle']>[1]>>,
  Assert<NotAny<ReturnType<SpiceSession['pollAction']>>>,
  Assert<NotAny<ReturnType<SpiceSession['step']>[number]>>,
  Assert<NotAny<Parameters<MigrationOrchestrator['handle']>[1]>>,
  Assert<NotAny<ReturnType<MigrationOrchestrator['pollAction']>>>,
  Assert<NotAny<ConstructorParameters<typeof SpiceSession>[0]>>,
  Assert<NotAny<ConstructorParameters<typeof MigrationOrchestrator>[0]>>,
  Assert<NotAny<ReturnType<TraceEngine['stepJson']>>>,
  Assert<NotAny<LivemigError['code']>>,
];

const s = new SpiceSession({ server: { host: 'h', port: 5900, tls_port: null, cert_subject: null } });
s.handle(performance.now(), { type: 'start' });
s.handle(0, { type: 'received', conn: 1, bytes: new Uint8Array(4) });
s.handle(0, { type: 'send', channel: { type: 'inputs', id: 0 }, msg_type: 111, body: new Uint8Array() });
for (let a = s.pollAction(); a !== undefined; a = s.pollAction()) {
  switch (a.type) {
    case 'transmit': {
      const bytes: Uint8Array = a.bytes;
      const conn: number = a.conn;
      void [bytes, conn];
      break;
    }
    case 'connect': {
      const port: number = a.port;
      const tls: { subject: string } | { hostname: string } | null = a.tls;
      void [port, tls];
      break;
    }
    case 'event':
      if (a.event === 'migrated') {
        const kind: 'seamless' | 'semi_seamless' = a.kind;
        void kind;
      }
      break;
  }
}
const t: number | undefined = s.pollTimeout();
const actions: SessionAction[] = s.step(1, { type: 'timeout' });
void [t, actions];

// @ts-expect-error bytes are a Uint8Array, not base64 text
s.handle(0, { type: 'received', conn: 1, bytes: 'AAAA' });
// @ts-expect-error no such input
s.handle(0, { type: 'bogus' });
// @ts-expect-error time is a number, never a BigInt
s.handle(0n, { type: 'start' });
// @ts-expect-error a session input is not an orchestrator input
new MigrationOrchestrator({} as OrchestratorConfig).handle(0, { type: 'connected', conn: 1 });
// @ts-expect-error the configuration needs a server
new SpiceSession({});

const o = new MigrationOrchestrator({
  mode: 'managed',
  source_features: ['MIGRATION_V3', 'MIGRATION_PARAMS'],
  destination_features: ['MIGRATION_V3'],
  domain: { name: 'vm', uuid: '7e1e7e1e-0000-4000-8000-000000000001', id: 1 },
  flags: 1,
});
const first = o.step(0, { type: 'start' })[0];
if (first?.type === 'call') {
  const flags: number = first.flags;
  const cookie: Uint8Array | undefined = first.cookie;
  void [flags, cookie];
}
if (first?.type === 'done') {
  const verdict: 'migrated' | 'failed' | 'source_left_paused' | 'unknown' = first.verdict;
  void verdict;
}

try {
  new TraceEngine('{}').stepJson(0, '{"type":"start"}');
} catch (e) {
  if (isLivemigError(e)) {
    const code: ErrorCode = e.code;
    void code;
  }
}
const v: number = traceVersion() + traceVersion2();
void v;

// The WebSocket transport: the browser's WebSocket and WebCrypto fit the injectable slots.
const client = new SpiceClient({
  url: 'ws://127.0.0.1:5900',
  password: 'pw',
  channelTypes: ['inputs', 'display'],
  WebSocket,
  subtle: crypto.subtle,
  urlFor: (r) => (r.role === 'destination' ? `wss://proxy.example/${r.host}/${r.port}` : defaultUrl(r)),
  allowTarget: async (t: Endpoint) => t.host.endsWith('.example'),
  onEvent: (e: SessionEvent) => {
    if (e.event === 'migrated') {
      const kind: 'seamless' | 'semi_seamless' = e.kind;
      void kind;
    }
  },
});
client.send({ type: 'inputs', id: 0 }, 111, new Uint8Array(10));
const reason: Promise<string> = client.closed;
void reason;
client.close();
void encryptTicket(crypto.subtle, new Uint8Array(), 'pw').then((t: Uint8Array) => t.length);
// @ts-expect-error: a url is a string
new SpiceClient({ url: 5900 });
// @ts-expect-error: the policy answers a boolean
new SpiceClient({ url: 'ws://h:1', allowTarget: () => 'yes' });

// livemig/slim: the same API, loaded explicitly.
import { initWasm, SpiceSession as SlimSession } from 'livemig/slim';
void initWasm(new URL('livemig.wasm', 'https://example.invalid/')).then(() => new SlimSession({ server: { host: 'h', port: 1, tls_port: null, cert_subject: null } }));
// @ts-expect-error: a source is required
void initWasm(null);
