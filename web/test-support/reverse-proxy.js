// A reverse proxy for the browser tests, as an API gateway in front of podterm: every request
// and every WebSocket upgrade goes where `route` says (the upgrade's bytes piped both ways).

import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';

/**
 * Where one request goes, or null for a 404 with `notFound` as its body.
 * @typedef {{port: number, host?: string, path: string, headers: [string, string][]}} Route
 */

/**
 * @param {(req: http.IncomingMessage) => Route | null} route
 * @param {object} [o]
 * @param {string} [o.notFound] the body of a 404 for a request `route` has no place for
 * @param {(client: net.Socket, upstream: net.Socket) => void} [o.onTunnel] each upgraded pair
 * @returns {Promise<{port: number, close: () => Promise<void>}>}
 */
export async function reverseProxy(route, { notFound = 'not found', onTunnel } = {}) {
  const server = http.createServer((req, res) => {
    const to = route(req);
    if (!to) {
      res.writeHead(404).end(notFound);
      return;
    }
    const forward = http.request(
      { host: to.host ?? '127.0.0.1', port: to.port, method: req.method, path: to.path, headers: Object.fromEntries(to.headers) },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  server.on('upgrade', (req, socket, head) => {
    const to = route(req);
    if (!to) return socket.destroy();
    const conn = net.connect(to.port, to.host ?? '127.0.0.1', () => {
      let text = `${req.method} ${to.path} HTTP/1.1\r\n`;
      for (const [k, v] of to.headers) text += `${k}: ${v}\r\n`;
      conn.write(`${text}\r\n`);
      conn.write(head);
      conn.pipe(socket);
      socket.pipe(conn);
    });
    onTunnel?.(socket, conn);
    conn.on('error', () => socket.destroy());
    socket.on('error', () => conn.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = /** @type {net.AddressInfo} */ (server.address());
  return {
    port,
    async close() {
      if (!server.listening) return;
      const closed = once(server, 'close');
      server.close();
      server.closeAllConnections();
      await closed;
    },
  };
}

/**
 * A request's headers as [name, value] pairs, in the order received.
 * @param {string[]} raw `rawHeaders`
 * @returns {[string, string][]}
 */
export function headerPairs(raw) {
  /** @type {[string, string][]} */
  const out = [];
  for (let i = 0; i < raw.length; i += 2) out.push([raw[i], raw[i + 1]]);
  return out;
}
