// Starts the real `podterm dev` on 127.0.0.1:0 for the browser tests and reads its URL.

import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The podterm binary: $PODTERM_BIN, else a debug build made now (a no-op when up to date). */
export function binary() {
  if (process.env.PODTERM_BIN) return process.env.PODTERM_BIN;
  const build = spawnSync('cargo', ['build', '--quiet', '--locked', '--bin', 'podterm'], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  if (build.status !== 0) throw new Error('cargo build --bin podterm failed');
  return path.join(ROOT, 'target/debug/podterm');
}

/**
 * The resume grace of the tests' gateways (unless a test sets its own): a page a test closes
 * leaves its session detached (browsers close with 1001), and the default 5 minutes would hold
 * every such session, and the gateway's drain at `stop()`, that long.
 */
const TEST_RESUME_GRACE = '5s';

/**
 * Runs `podterm dev` with `env` added and resolves once it prints the gateway's URL.
 * @param {Record<string, string>} [env]
 * @returns {Promise<{url: string, stop: () => Promise<void>, output: () => string}>}
 */
export async function startDev(env = {}) {
  const child = spawn(binary(), ['dev'], {
    cwd: ROOT,
    env: { ...process.env, PODTERM_LISTEN: '127.0.0.1:0', PODTERM_RESUME_GRACE: TEST_RESUME_GRACE, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const url = await new Promise((resolve, reject) => {
    const seen = (chunk) => {
      out += chunk;
      // The gateway's URL (plain http on loopback); the dev cluster's own is https.
      const m = out.match(/http:\/\/127\.0\.0\.1:\d+\/?/);
      if (m) resolve(m[0].endsWith('/') ? m[0] : `${m[0]}/`);
    };
    child.stdout.setEncoding('utf8').on('data', seen);
    child.stderr.setEncoding('utf8').on('data', (c) => {
      out += c;
    });
    child.once('exit', (code) => reject(new Error(`podterm dev exited (${code}) before printing its URL:\n${out}`)));
    setTimeout(() => reject(new Error(`podterm dev printed no URL in 60 s:\n${out}`)), 60_000).unref();
  });
  return {
    url,
    output: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}
