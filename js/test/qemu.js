// Real QEMU peers for the package's tests, through host-native's harness: `livemig qemu`
// starts a SPICE migration source and destination and answers line commands with JSON
// lines (host-native/src/qemu/serve.rs). The binary is built here if needed (cargo is a
// no-op when it is up to date), so these tests never skip.
import { spawn, execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { MSG } from './client-log.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Path of the `livemig` binary (debug), built if needed. Built the way `cargo test
 * --workspace` builds it (the test command has just run that, so this is a no-op there): a
 * plain `cargo build -p livemig-host` resolves other features and would rebuild wasmtime.
 */
export function livemigBinary() {
  if (process.env.LIVEMIG_BIN) return process.env.LIVEMIG_BIN;
  if (built === undefined) {
    execFileSync('cargo', ['test', '-q', '--workspace', '--no-run'], { cwd: root, stdio: 'inherit' });
    built = path.join(process.env.CARGO_TARGET_DIR ?? path.join(root, 'target'), 'debug', 'livemig');
  }
  return built;
}
let built;

/** A running `livemig qemu`: `ready` has the ports; `ask(cmd)` resolves with the reply. */
export class QemuPair {
  #child;
  #replies = [];
  #waiters = [];
  #exited;

  static async start(args = []) {
    const pair = new QemuPair(args);
    pair.ready = await pair.#next();
    if (pair.ready.event !== 'ready') throw new Error(`livemig qemu: ${JSON.stringify(pair.ready)}`);
    return pair;
  }

  constructor(args) {
    this.#child = spawn(livemigBinary(), ['qemu', ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.#exited = new Promise((resolve) => this.#child.on('exit', resolve));
    createInterface({ input: this.#child.stdout }).on('line', (line) => {
      const reply = JSON.parse(line);
      const w = this.#waiters.shift();
      if (w) w.resolve(reply);
      else this.#replies.push(reply);
    });
    this.#exited.then((code) => {
      for (const w of this.#waiters.splice(0)) w.reject(new Error(`livemig qemu exited (${code})`));
    });
  }

  #next() {
    if (this.#replies.length > 0) return Promise.resolve(this.#replies.shift());
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** Send one command; the reply, or a rejection on `{"event":"error"}`. */
  async ask(command) {
    this.#child.stdin.write(`${command}\n`);
    const reply = await this.#next();
    if (reply.event === 'error') throw new Error(`livemig qemu ${command}: ${reply.message}`);
    return reply;
  }

  /**
   * A side's SPICE channels once there are `n` of them (the server notices a close a moment
   * after the client made it); the last list seen after `ms`.
   */
  async channels(side, n, ms = 2000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const { channels } = await this.ask(`channels ${side}`);
      if (channels.length === n || Date.now() > deadline) return channels;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** The `ws://` URL of a side's plain SPICE port. */
  url(side = 'source') {
    const s = this.ready[side];
    return `ws://${s.host}:${s.port}/`;
  }

  /** Tear the pair down (also on a failed test: call it from `after`). */
  async stop() {
    if (this.#child.exitCode === null) {
      this.#child.stdin.end('quit\n');
      const timer = setTimeout(() => this.#child.kill('SIGKILL'), 5000);
      await this.#exited;
      clearTimeout(timer);
    }
  }
}

/**
 * The strict seamless checks of the SPICE issue, over a client's event log
 * (`[{ at: epochMs, event }]`) and the harness's figures. Returns a list of violations.
 */
export function seamlessViolations({ log, migrated, spiceCompleted, destChannels, sessionId, channelCount }) {
  const bad = [];
  const startedAt = log.findIndex((e) => e.event.event === 'migration_started');
  if (startedAt < 0) return ['no migration_started'];
  const after = log.slice(startedAt).map((e) => e.event);
  const done = log.find((e) => e.event.event === 'migrated');
  if (!done) bad.push('no migrated event');
  else if (done.event.kind !== 'seamless') bad.push(`migrated ${done.event.kind}`);
  const lagUs = spiceCompleted.timestamp_us - migrated.completed_at_us;
  if (!(lagUs >= 0 && lagUs < 1_000_000)) bad.push(`SPICE_MIGRATE_COMPLETED ${lagUs} µs after completion`);
  if (destChannels.length !== channelCount) bad.push(`${destChannels.length} destination channels, expected ${channelCount}`);
  for (const ch of destChannels) {
    if (ch.connection_id !== sessionId) bad.push(`destination channel ${ch.type}:${ch.id} has connection id ${ch.connection_id}, not ${sessionId}`);
  }
  const switched = after.filter((e) => e.event === 'channel_switched');
  if (switched.length !== channelCount) bad.push(`${switched.length} channels switched, expected ${channelCount}`);
  for (const s of switched) {
    // main, display and inputs carry migrate data (flags 3); cursor does not (flags 0).
    const wants = s.channel.type !== 'cursor';
    if ((s.migrate_data_len > 0) !== wants) bad.push(`${s.channel.type} forwarded ${s.migrate_data_len} B of MIGRATE_DATA`);
  }
  for (const e of after) {
    if (e.event === 'switch_host') bad.push('SWITCH_HOST');
    if (e.event === 'session_reset') bad.push('session reset (MIGRATE_END)');
    if (e.event === 'channel_ready') bad.push(`channel_ready ${e.channel.type} after the migration began (destination MAIN_INIT or relink)`);
    if (e.event === 'error') bad.push(`error ${JSON.stringify(e.error)}`);
    if (e.event === 'migration_failed') bad.push(`migration_failed: ${e.reason}`);
    if (e.event === 'message' && e.channel.type === 'main' && MAIN_FORBIDDEN[e.msg_type]) {
      bad.push(`main message ${MAIN_FORBIDDEN[e.msg_type]} reached the application`);
    }
  }
  return bad;
}

/** Main-channel messages the session must never hand the application during a seamless switch. */
const MAIN_FORBIDDEN = {
  [MSG.MAIN_INIT]: 'MAIN_INIT',
  [MSG.MAIN_MIGRATE_SWITCH_HOST]: 'MIGRATE_SWITCH_HOST',
  [MSG.MAIN_MIGRATE_END]: 'MIGRATE_END',
};

/**
 * A real seamless migration followed by a client, with every strict check: the client
 * (`c`: `waitFor(name, opts)`, `stillAnswers()`, `log()`, `sessionId()`, each possibly async:
 * a LoggedClient in Node, or the same through a browser page) is linked to `pair`'s source
 * with `channelCount` channels. Returns `{ violations, lagMs, facts }`
 * (`facts`: what seamlessViolations judged).
 */
export async function followSeamless(pair, c, channelCount) {
  await c.stillAnswers();
  await pair.ask('client_migrate_info');
  await c.waitFor('migration_connected', { fields: { kind: 'seamless' } });
  const migrated = await pair.ask('migrate');
  await c.waitFor('migrated');
  const spiceCompleted = await pair.ask('spice_migrate_completed');
  const destChannels = (await pair.ask('channels destination')).channels;
  await c.stillAnswers();
  const facts = { log: await c.log(), migrated, spiceCompleted, destChannels, sessionId: await c.sessionId(), channelCount };
  const lagMs = (spiceCompleted.timestamp_us - migrated.completed_at_us) / 1000;
  return { violations: seamlessViolations(facts), lagMs, facts };
}
