// A minimal reverse proxy that serves a podterm under a sub-path, the way an API gateway would
// (prefix stripped, Host kept, WebSocket upgrades passed through).

import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';

/**
 * @param {string} upstream podterm's base URL, e.g. http://127.0.0.1:1234/
 * @param {string} prefix e.g. "/tools/term/"
 * @returns {Promise<{url: string, close: () => Promise<void>}>}
 */
export async function subPathProxy(upstream, prefix) {
  const up = new URL(upstream);
  const strip = (url) => (url.startsWith(prefix) ? `/${url.slice(prefix.length)}` : null);
  const server = http.createServer((req, res) => {
    const path = strip(req.url);
    if (path === null) {
      res.writeHead(404).end('not under the prefix');
      return;
    }
    const forward = http.request(
      { host: up.hostname, port: up.port, method: req.method, path, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  server.on('upgrade', (req, socket, head) => {
    const path = strip(req.url);
    if (path === null) return socket.destroy();
    const conn = net.connect(Number(up.port), up.hostname, () => {
      let text = `${req.method} ${path} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) text += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      conn.write(`${text}\r\n`);
      conn.write(head);
      conn.pipe(socket);
      socket.pipe(conn);
    });
    conn.on('error', () => socket.destroy());
    socket.on('error', () => conn.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = /** @type {net.AddressInfo} */ (server.address());
  return {
    url: `http://127.0.0.1:${port}${prefix}`,
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
