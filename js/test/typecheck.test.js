// The TypeScript types: generated from the Rust types (tsify) into dist/*.d.ts at build time.
// This test type-checks, with tsc --strict:
//   * src/*.d.ts and the generated declarations themselves;
//   * test/types/api.ts, the public API used as documented (and misused, @ts-expect-error);
//   * every orchestrator and SPICE session trace of the corpus as a constant of the
//     generated types (in their JSON form), so the types accept what the machines produce.
// It also checks that the public declarations hold no `any` and that src/index.d.ts
// re-exports every generated type.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { corpus } from './corpus.js';

const js = new URL('../', import.meta.url);
const dir = new URL('dist/typecheck/', js);
const read = (path) => readFileSync(new URL(path, js), 'utf8');

/** wasm-bindgen's loader declarations (not re-exported; InitOutput is typed with `any`). */
const LOADER = new Set(['InitInput', 'InitOutput', 'SyncInitInput', 'initSync', '__wbg_init']);
/** The raw classes and functions, which src/*.d.ts wrap. */
const WRAPPED = new Set(['MigrationOrchestrator', 'SpiceSession', 'TraceEngine', 'traceVersion']);

/** Top-level declarations of a .d.ts: [{ name, text }] with comments removed. */
function declarations(dts) {
  const code = dts.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  return code
    .split(/\n(?=export )/)
    .map((text) => ({ name: text.match(/^export (?:default )?(?:declare )?(?:type|interface|class|function|const) (\w+)/)?.[1], text }))
    .filter((d) => d.name);
}

test('the public declarations hold no any', () => {
  for (const file of ['src/index.d.ts', 'src/trace.d.ts', 'src/slim.d.ts', 'dist/livemig_wasm.d.ts', 'dist/trace/livemig_wasm.d.ts']) {
    const decls = declarations(read(file));
    assert.ok(decls.length > 0, file);
    for (const d of decls) {
      if (LOADER.has(d.name)) continue;
      assert.doesNotMatch(d.text, /\bany\b/, `${file}: ${d.name}`);
    }
  }
});

test('src/index.d.ts re-exports every generated type', () => {
  const generated = declarations(read('dist/livemig_wasm.d.ts'))
    .map((d) => d.name)
    .filter((n) => !LOADER.has(n) && !WRAPPED.has(n));
  const block = read('src/index.d.ts').match(/export type \{([^}]*)\} from '\.\.\/dist\/livemig_wasm\.js'/);
  assert.ok(block);
  const reexported = block[1].split(',').map((s) => s.trim()).filter(Boolean);
  assert.deepEqual([...reexported].sort(), [...new Set(generated)].sort());
});

test('tsc --strict accepts the API, its misuse is refused, and the corpus fits the types', () => {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(new URL('corpus/', dir), { recursive: true });
  const kinds = { orchestrator: 'OrchestratorTrace', spice_session: 'SessionTrace' };
  let n = 0;
  for (const t of corpus()) {
    const kind = kinds[t.header.setup.machine];
    if (!kind) continue; // source_host / destination_host: JSON only (livemig/trace), no object types
    const lines = t.text.split('\n').filter((l) => l.trim() !== '');
    const name = t.name.replace(/[^A-Za-z0-9]+/g, '_');
    writeFileSync(
      new URL(`corpus/${name}.ts`, dir),
      `// ${t.name}\nimport type { ${kind} } from '../../../test/types/corpus.js';\n` +
        `export const trace: ${kind} = [\n${lines.join(',\n')},\n];\n`,
    );
    n++;
  }
  assert.ok(n >= 80, `${n} traces typed`);
  writeFileSync(
    new URL('tsconfig.json', dir),
    JSON.stringify(
      {
        compilerOptions: {
          strict: true,
          noEmit: true,
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          lib: ['es2022', 'dom'],
          types: [],
          skipLibCheck: false,
          noUnusedLocals: true,
        },
        files: ['../../src/index.d.ts', '../../src/trace.d.ts', '../../src/slim.d.ts'],
        include: ['../../test/types/*.ts', 'corpus/*.ts'],
      },
      null,
      2,
    ),
  );
  const tsc = new URL('node_modules/.bin/tsc', js).pathname;
  try {
    execFileSync(tsc, ['-p', new URL('tsconfig.json', dir).pathname], { encoding: 'utf8', stdio: 'pipe' });
  } catch (e) {
    assert.fail(`tsc failed:\n${e.stdout}${e.stderr}`);
  }
});
