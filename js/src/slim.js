// Entry for bundlers and hosts that load the WebAssembly themselves (`livemig/slim`): the
// same API as `livemig`, and `initWasm(source)` to call once before using it. `source` is
// the module's URL, its bytes, a Response or a compiled WebAssembly.Module; the module ships
// as `livemig/livemig.wasm` (with esbuild: `--loader:.wasm=file` gives its URL).
import init, { initSync } from '../dist/livemig_wasm.js';

/** Load the module (asynchronously: URLs and Responses are fetched and streamed). */
export async function initWasm(source) {
  if (source instanceof WebAssembly.Module || ArrayBuffer.isView(source) || source instanceof ArrayBuffer) {
    initSync({ module: source });
  } else {
    await init({ module_or_path: source });
  }
}

export * from './api.js';
export { SpiceClient, defaultUrl, encryptTicket } from './transport.js';
