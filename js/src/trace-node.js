// Node entry of `livemig/trace` (see node.js).
import { readFileSync } from 'node:fs';
import { initSync } from '../dist/trace/livemig_wasm.js';

initSync({ module: readFileSync(new URL('../dist/trace/livemig_wasm_bg.wasm', import.meta.url)) });

export * from './trace-api.js';
