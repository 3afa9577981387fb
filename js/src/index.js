// Browser entry (exports condition "default"): a plain <script type="module"> or an import
// map can load it with no bundler. The module is fetched next to this file's package
// (dist/livemig_wasm_bg.wasm) before the classes are exported (top-level await).
import init from '../dist/livemig_wasm.js';

await init({ module_or_path: new URL('../dist/livemig_wasm_bg.wasm', import.meta.url) });

export * from './api.js';
export { SpiceClient, defaultUrl, encryptTicket } from './transport.js';
