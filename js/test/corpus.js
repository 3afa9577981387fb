// The trace corpus (tests/traces/ at the repository root) and conversions between the trace
// JSON form (bytes as base64 text) and the object API form (bytes as Uint8Array).
import { readdirSync, readFileSync } from 'node:fs';
import { Buffer } from 'node:buffer';

export const corpusDir = new URL('../../tests/traces/', import.meta.url);

/** Every trace, sorted: [{ name: 'spice/x.jsonl', text, header }]. */
export function corpus() {
  const out = [];
  const walk = (dir, prefix) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(new URL(`${e.name}/`, dir), `${prefix}${e.name}/`);
      else if (e.name.endsWith('.jsonl')) {
        const text = readFileSync(new URL(e.name, dir), 'utf8');
        out.push({ name: `${prefix}${e.name}`, text, header: JSON.parse(text.split('\n', 1)[0]) });
      }
    }
  };
  walk(corpusDir, '');
  return out.sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** The records of a trace (header excluded). */
export function records(text) {
  return text
    .split('\n')
    .slice(1)
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l));
}

/** The JSON form of an object API value: every Uint8Array becomes base64 text. */
export function toJsonForm(v) {
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
  if (Array.isArray(v)) return v.map(toJsonForm);
  if (v !== null && typeof v === 'object') {
    const out = {};
    for (const [k, x] of Object.entries(v)) out[k] = toJsonForm(x);
    return out;
  }
  return v;
}

/** The byte fields of each input type (test knowledge: a field missed here would still be
 * accepted as base64 text, so the object tests would pass with less coverage, not wrongly). */
const BYTE_FIELDS = {
  received: ['bytes'],
  ticket: ['ticket'],
  send: ['body'],
  begun: ['cookie'],
  prepared: ['cookie'],
  performed: ['cookie'],
  finished: ['cookie'],
};

/** An input in the object form: its base64 byte fields as Uint8Array. */
export function inputFromJsonForm(input) {
  const out = { ...input };
  for (const f of BYTE_FIELDS[input.type] ?? []) {
    if (typeof out[f] === 'string') out[f] = new Uint8Array(Buffer.from(out[f], 'base64'));
  }
  return out;
}
