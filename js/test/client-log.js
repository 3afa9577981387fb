// A SpiceClient that keeps a log of its events, with waits by event name: the same code runs
// in Node (test/ws-transport.test.js) and in the browser page (test/browser/), so both
// follow a real migration the same way. Plain ESM, no Node API.

/** SPICE message numbers the checks look at (spec/spice-migration.md §2). */
export const MSG = {
  MAIN_INIT: 103,
  MAIN_MIGRATE_SWITCH_HOST: 111,
  MAIN_MIGRATE_END: 112,
  INPUTS_MOUSE_MOTION_ACK: 111,
  INPUTS_MOUSE_MOTION: 111,
};

const INPUTS = { type: 'inputs', id: 0 };

/** A MOUSE_MOTION body: dx 1, dy 1, no button. */
function motion() {
  const b = new Uint8Array(10);
  const v = new DataView(b.buffer);
  v.setInt32(0, 1, true);
  v.setInt32(4, 1, true);
  return b;
}

/** One log entry without byte bodies (so it crosses page.evaluate and JSON). */
function entry(event) {
  if (event.event !== 'message') return event;
  const { body, ...rest } = event;
  return { ...rest, body_len: body.length };
}

export class LoggedClient {
  /** `[{ at: Date.now() ms, event }]` in order. */
  log = [];
  sessionId = null;
  #waiters = [];
  #client;

  /** `livemig` is the package module; `options` go to its SpiceClient (`onEvent` too). */
  constructor(livemig, options) {
    this.#client = new livemig.SpiceClient({
      ...options,
      onEvent: (event) => {
        const e = entry(event);
        if (e.event === 'channel_ready' && e.session_id != null) this.sessionId = e.session_id;
        this.log.push({ at: Date.now(), event: e });
        this.#waiters = this.#waiters.filter((w) => !w.check());
        options.onEvent?.(event);
      },
    });
    this.closed = this.#client.closed;
    this.closed.then(() => {
      for (const w of this.#waiters.splice(0)) w.check(true);
    });
  }

  /** Events matching `name` and `fields` (compared shallowly; `channel` names a channel type). */
  count(name, fields = {}) {
    const field = (e, k) => (k === 'channel' ? e.channel?.type : e[k]);
    return this.log.filter((e) => e.event.event === name && Object.entries(fields).every(([k, v]) => field(e.event, k) === v)).length;
  }

  /** Resolves once `count(name, fields) >= n`; rejects after `ms` or when the session closes first. */
  waitFor(name, { n = 1, fields = {}, ms = 10_000 } = {}) {
    return new Promise((resolve, reject) => {
      let timer;
      const w = {
        check: (closed = false) => {
          if (this.count(name, fields) >= n) {
            clearTimeout(timer);
            resolve(this.log.filter((e) => e.event.event === name).at(-1).event);
            return true;
          }
          if (closed) {
            clearTimeout(timer);
            reject(new Error(`closed before ${n} × ${name}: ${JSON.stringify(this.log.slice(-3))}`));
          }
          return closed;
        },
      };
      if (w.check()) return;
      timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((x) => x !== w);
        reject(new Error(`no ${n} × ${name} ${JSON.stringify(fields)} within ${ms} ms; last: ${JSON.stringify(this.log.slice(-3))}`));
      }, ms);
      this.#waiters.push(w);
    });
  }

  /** The server still answers: 4 motions on inputs give one more MOUSE_MOTION_ACK. */
  async stillAnswers() {
    const acks = this.count('message', { channel: 'inputs', msg_type: MSG.INPUTS_MOUSE_MOTION_ACK });
    for (let i = 0; i < 4; i++) this.#client.send(INPUTS, MSG.INPUTS_MOUSE_MOTION, motion());
    await this.waitFor('message', { n: acks + 1, fields: { channel: 'inputs', msg_type: MSG.INPUTS_MOUSE_MOTION_ACK } });
  }

  send(channel, msgType, body) {
    this.#client.send(channel, msgType, body);
  }

  close() {
    this.#client.close();
    return this.closed;
  }
}

/**
 * Link `n` times in a row, main channel only, each link closed before the next; returns
 * `{ ok, failed, errors, ms }` (`ms`: each link's time to MAIN_INIT).
 */
export async function linkMany(livemig, options, n) {
  const out = { ok: 0, failed: 0, errors: [], ms: [] };
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const c = new LoggedClient(livemig, { ...options, channelTypes: ['main'] });
    try {
      await c.waitFor('channel_ready', { fields: { channel: 'main' }, ms: 5000 });
      if (c.sessionId === null) throw new Error('no session id from MAIN_INIT');
      out.ms.push(performance.now() - t0);
      out.ok++;
    } catch (e) {
      out.failed++;
      if (out.errors.length < 5) out.errors.push(`link ${i}: ${e.message}`);
    }
    await c.close();
  }
  return out;
}
