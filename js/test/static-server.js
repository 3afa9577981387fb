// A read-only static file server on 127.0.0.1 for the browser tests (Chromium lets a page
// served from 127.0.0.1 reach loopback WebSockets).
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };

/** Serve the files under `root` (a directory URL ending in `/`) whose path matches `allow`. */
export function serveStatic(root, allow = /^\//) {
  const server = createServer(async (req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    const ext = path.slice(path.lastIndexOf('.'));
    if (path.includes('..') || !allow.test(path) || !TYPES[ext]) {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = await readFile(new URL(`.${path}`, root));
      res.writeHead(200, { 'content-type': TYPES[ext] }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** Chromium's flags on these machines (shared/notes/toolchain.md, "Browser tests"). */
export const CHROMIUM = {
  executablePath: process.env.LIVEMIG_CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
};
