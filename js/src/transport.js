// The ready transport: a SpiceSession driven over WebSockets (spice-server accepts a
// WebSocket upgrade on its SPICE port, shared/notes/toolchain.md "Browser tests"), with the
// ticket encrypted by WebCrypto RSA-OAEP and the session's timers on setTimeout. The
// session decides everything (spec/spice-migration.md §4); this file only executes its
// actions and feeds back what the sockets and WebCrypto delivered.
import { SpiceSession } from './api.js';
import { fail } from './errors.js';

/** `ws://H:P` → plain port P; `wss://H:P` → TLS port P (the default URL mapping's inverse). */
function endpointOf(url) {
  let u;
  try {
    u = new URL(url);
  } catch {
    throw fail('invalid_config', `not a URL: ${url}`);
  }
  const tls = u.protocol === 'wss:';
  if (!tls && u.protocol !== 'ws:') throw fail('invalid_config', `not a ws:// or wss:// URL: ${url}`);
  const port = Number(u.port || (tls ? 443 : 80));
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  return { host, port: tls ? null : port, tls_port: tls ? port : null, cert_subject: null };
}

/**
 * The default URL of a `connect` action: `ws://host:port/`, or `wss://host:port/` on the TLS
 * port. The browser verifies TLS against the host name with its own trust store; a
 * certificate subject from the server (`tls.subject`) cannot be checked from JS.
 */
export function defaultUrl({ host, port, tls }) {
  const h = host.includes(':') ? `[${host}]` : host;
  return `${tls ? 'wss' : 'ws'}://${h}:${port}/`;
}

/** SPICE's ticket: RSA-OAEP (SHA-1, MGF1-SHA-1, empty label) of the password and a NUL. */
export async function encryptTicket(subtle, publicKey, password) {
  const key = await subtle.importKey('spki', publicKey, { name: 'RSA-OAEP', hash: 'SHA-1' }, false, ['encrypt']);
  const text = new TextEncoder().encode(`${password}\0`);
  return new Uint8Array(await subtle.encrypt({ name: 'RSA-OAEP' }, key, text));
}

/**
 * A SPICE client over WebSockets that follows migrations. It links the main channel at
 * once, then every channel the server lists (or `channelTypes`).
 */
export class SpiceClient {
  #session;
  #WebSocket;
  #urlFor;
  #allowTarget;
  #subtle;
  #clock;
  #onEvent;
  #sockets = new Map();
  #driving = false;
  #timer;
  #done;
  #closedReason;

  /** Resolves with the reason once the session is over. */
  closed;

  constructor(options) {
    const o = options ?? {};
    const server = o.server ?? (o.url !== undefined ? endpointOf(o.url) : undefined);
    if (server === undefined) throw fail('invalid_config', 'give a url (ws:// or wss://) or a server endpoint');
    this.#WebSocket = o.WebSocket ?? globalThis.WebSocket;
    if (typeof this.#WebSocket !== 'function') {
      throw fail('invalid_config', 'no WebSocket constructor here: pass options.WebSocket (e.g. the `ws` package in Node)');
    }
    this.#subtle = o.subtle ?? globalThis.crypto?.subtle;
    this.#urlFor = o.urlFor ?? defaultUrl;
    this.#allowTarget = o.allowTarget ?? ((target) => target.host === server.host);
    this.#clock = o.now ?? (() => performance.now());
    this.#onEvent = o.onEvent ?? (() => {});
    this.#session = new SpiceSession({
      ...o.session,
      server,
      password: o.password ?? '',
      prefer_tls: o.preferTls ?? server.port == null,
      channel_types: o.channelTypes ?? [],
    });
    this.closed = new Promise((resolve) => {
      this.#done = resolve;
    });
    this.#input({ type: 'start' });
  }

  /** Send a message on a channel (held and replayed in order while it switches servers). */
  send(channel, msgType, body) {
    this.#input({ type: 'send', channel, msg_type: msgType, body });
  }

  /** Close every connection; `closed` resolves. */
  close() {
    this.#input({ type: 'disconnect' });
  }

  /**
   * Feed one input and execute what follows. An invalid input (e.g. a bad `send`) throws
   * here and changes nothing. Called again while the actions are being executed (from
   * `onEvent`), it only feeds the session: the running drain executes the new actions after
   * the pending ones, in order.
   */
  #input(input) {
    if (this.#closedReason !== undefined) return;
    this.#session.handle(this.#clock(), input);
    if (this.#driving) return;
    this.#driving = true;
    try {
      for (let a = this.#session.pollAction(); a !== undefined; a = this.#session.pollAction()) {
        this.#execute(a);
        if (this.#closedReason !== undefined) break;
      }
    } finally {
      this.#driving = false;
    }
    if (this.#closedReason === undefined) this.#arm();
    else this.#session.free();
  }

  #arm() {
    clearTimeout(this.#timer);
    const at = this.#session.pollTimeout();
    if (at === undefined) return;
    this.#timer = setTimeout(() => this.#input({ type: 'timeout' }), Math.max(0, at - this.#clock()));
  }

  #execute(a) {
    switch (a.type) {
      case 'connect':
        return this.#connect(a);
      case 'transmit':
        return this.#transmit(a.conn, a.bytes);
      case 'close':
        return this.#drop(a.conn);
      case 'encrypt_ticket':
        return this.#ticket(a);
      case 'check_target':
        return this.#checkTarget(a.endpoint);
      case 'event':
        return this.#event(a);
    }
  }

  #connect({ conn, channel, role, endpoint, port, tls }) {
    let ws;
    try {
      const url = this.#urlFor({ host: endpoint.host, port, tls: tls !== null, subject: tls?.subject ?? null, channel, role });
      ws = new this.#WebSocket(url);
      ws.binaryType = 'arraybuffer';
    } catch (e) {
      queueMicrotask(() => this.#input({ type: 'connect_failed', conn, reason: String(e?.message ?? e) }));
      return;
    }
    this.#sockets.set(conn, ws);
    const live = () => this.#sockets.get(conn) === ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      if (live()) this.#input({ type: 'connected', conn });
    };
    ws.onmessage = (m) => {
      if (!live()) return;
      if (typeof m.data === 'string') return this.#lost(conn, 'a text frame on a SPICE WebSocket');
      this.#input({ type: 'received', conn, bytes: new Uint8Array(m.data) });
    };
    ws.onclose = (e) => {
      if (!live()) return;
      this.#sockets.delete(conn);
      const reason = `WebSocket closed (code ${e.code}${e.reason ? `: ${e.reason}` : ''})`;
      this.#input(opened ? { type: 'closed', conn, reason } : { type: 'connect_failed', conn, reason });
    };
  }

  #transmit(conn, bytes) {
    try {
      this.#sockets.get(conn)?.send(bytes);
    } catch (e) {
      const reason = `send failed: ${e?.message ?? e}`;
      queueMicrotask(() => this.#lost(conn, reason));
    }
  }

  /** Drop a connection the transport broke, and tell the session. */
  #lost(conn, reason) {
    if (!this.#sockets.has(conn)) return;
    this.#drop(conn);
    this.#input({ type: 'closed', conn, reason });
  }

  #drop(conn) {
    const ws = this.#sockets.get(conn);
    this.#sockets.delete(conn);
    if (ws !== undefined) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.close();
    }
  }

  #ticket({ conn, public_key, password }) {
    if (this.#subtle === undefined) {
      queueMicrotask(() => this.#input({ type: 'ticket_failed', conn, reason: 'no WebCrypto here (crypto.subtle needs a secure context)' }));
      return;
    }
    encryptTicket(this.#subtle, public_key, password).then(
      (ticket) => this.#input({ type: 'ticket', conn, ticket }),
      (e) => this.#input({ type: 'ticket_failed', conn, reason: `WebCrypto RSA-OAEP: ${e?.message ?? e}` }),
    );
  }

  #checkTarget(endpoint) {
    Promise.resolve()
      .then(() => this.#allowTarget(endpoint))
      .then(
        (allow) => this.#input({ type: 'target_decision', allow: allow === true }),
        () => this.#input({ type: 'target_decision', allow: false }),
      );
  }

  #event(action) {
    const { type, ...event } = action;
    if (event.event === 'closed') this.#finish(event.reason);
    try {
      this.#onEvent(event);
    } catch (e) {
      queueMicrotask(() => {
        throw e;
      });
    }
  }

  #finish(reason) {
    this.#closedReason = reason;
    clearTimeout(this.#timer);
    for (const conn of [...this.#sockets.keys()]) this.#drop(conn);
    this.#done(reason);
  }
}
