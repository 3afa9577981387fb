// Node entry (`import ... from 'livemig'`, exports condition "node"): reads the module from
// the package and instantiates it synchronously before the classes are exported.
import { readFileSync } from 'node:fs';
import { initSync } from '../dist/livemig_wasm.js';

initSync({ module: readFileSync(new URL('../dist/livemig_wasm_bg.wasm', import.meta.url)) });

export * from './api.js';
export { SpiceClient, defaultUrl, encryptTicket } from './transport.js';
