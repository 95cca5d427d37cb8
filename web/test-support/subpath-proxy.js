// A minimal reverse proxy that serves a podterm under a sub-path, the way an API gateway would
// (prefix stripped, Host kept, WebSocket upgrades passed through).

import { headerPairs, reverseProxy } from './reverse-proxy.js';

/**
 * @param {string} upstream podterm's base URL, e.g. http://127.0.0.1:1234/
 * @param {string} prefix e.g. "/tools/term/"
 * @returns {Promise<{url: string, close: () => Promise<void>}>}
 */
export async function subPathProxy(upstream, prefix) {
  const up = new URL(upstream);
  const proxy = await reverseProxy(
    (req) => {
      const url = req.url ?? '';
      if (!url.startsWith(prefix)) return null;
      return { host: up.hostname, port: Number(up.port), path: `/${url.slice(prefix.length)}`, headers: headerPairs(req.rawHeaders) };
    },
    { notFound: 'not under the prefix' },
  );
  return { url: `http://127.0.0.1:${proxy.port}${prefix}`, close: () => proxy.close() };
}
