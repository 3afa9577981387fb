// Browser entry of `livemig/trace` (see index.js).
import init from '../dist/trace/livemig_wasm.js';

await init({ module_or_path: new URL('../dist/trace/livemig_wasm_bg.wasm', import.meta.url) });

export * from './trace-api.js';
