// The JS trace runner: replays one trace of the corpus (tests/traces/**/*.jsonl) through any
// engine and compares the canonical JSON of every action byte for byte. Plain ESM with no
// dependency, so other engines (the wasm sandbox, a browser page) reuse it unchanged.
//
// Trace format (core/src/trace.rs): JSON Lines; a header
//   {"livemig_trace":1,"setup":{"machine":...,"config":...}}
// then one record per input: {"now":N,"input":{...},"actions":[...]}.
// Every line is canonical (compact, fields in declaration order), and so is
// JSON.stringify(JSON.parse(line)): the runner checks that, which makes JSON.stringify of
// a recorded action exactly its text in the file.

/** An engine's actions differ from the trace's. */
export class TraceMismatch extends Error {
  constructor(line, index, expected, got) {
    super(`line ${line}: action ${index} differs\n  expected: ${expected}\n       got: ${got}`);
    this.name = 'TraceMismatch';
    this.line = line;
    this.index = index;
    this.expected = expected;
    this.got = got;
  }
}

/** The trace itself is malformed (not JSON, not canonical, wrong version, no header). */
export class TraceFormatError extends Error {
  constructor(line, message) {
    super(`line ${line}: ${message}`);
    this.name = 'TraceFormatError';
    this.line = line;
  }
}

function parseCanonical(text, line) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new TraceFormatError(line, `not JSON: ${e.message}`);
  }
  if (JSON.stringify(value) !== text) {
    throw new TraceFormatError(line, 'not canonical (JSON.stringify gives other text)');
  }
  return value;
}

/**
 * Replay `text` (a whole trace) through a fresh engine.
 *
 * @param {string} text the trace (JSON Lines).
 * @param {(setupJson: string) => { stepJson(now: number, inputJson: string): string[],
 *   free?(): void }} makeEngine builds the engine for the header's setup (JSON text);
 *   `stepJson` feeds one input (JSON text) and returns the canonical JSON of each action.
 * @param {{ version?: number }} [options] the trace version the engine reads (default 1).
 * @returns {{ inputs: number, actions: number }} what was replayed.
 * @throws {TraceMismatch} on the first differing action; {TraceFormatError} on a bad trace.
 */
export function runTrace(text, makeEngine, { version = 1 } = {}) {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  if (lines.length === 0 || lines[0] === '') throw new TraceFormatError(1, 'no header line');
  const header = parseCanonical(lines[0], 1);
  if (header.livemig_trace !== version) {
    throw new TraceFormatError(1, `trace version ${header.livemig_trace}, engine reads ${version}`);
  }
  const engine = makeEngine(JSON.stringify(header.setup));
  const done = { inputs: 0, actions: 0 };
  try {
    for (let i = 1; i < lines.length; i++) {
      const line = i + 1;
      if (lines[i].trim() === '') continue;
      const record = parseCanonical(lines[i], line);
      if (!Array.isArray(record.actions)) throw new TraceFormatError(line, 'no actions array');
      const expected = record.actions.map((a) => JSON.stringify(a));
      const got = engine.stepJson(record.now, JSON.stringify(record.input));
      for (let k = 0; k < Math.max(expected.length, got.length); k++) {
        if (expected[k] !== got[k]) {
          throw new TraceMismatch(line, k, expected[k] ?? '(none)', got[k] ?? '(none)');
        }
      }
      done.inputs += 1;
      done.actions += got.length;
    }
  } finally {
    engine.free?.();
  }
  return done;
}
