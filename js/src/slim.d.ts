// Types of `livemig/slim`: the API of `livemig` plus the explicit loader.
export * from './index.js';

/**
 * Load the WebAssembly module once before using anything else: its URL (fetched), a
 * Response, its bytes or a compiled module. The module ships as `livemig/livemig.wasm`.
 */
export function initWasm(source: URL | string | Response | BufferSource | WebAssembly.Module): Promise<void>;
