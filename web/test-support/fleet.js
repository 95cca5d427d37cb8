// A podterm fleet for the browser tests: `podterm dev-cluster`, two `podterm serve` replicas
// with peer ports and one resume secret, and in front of them a proxy that plays the API
// gateway (the user is the first path segment: /alice/… is served as alice, with the trusted
// headers set here and any sent by the browser dropped), sends each new connection to the
// replica `route` names, and can cut every open WebSocket without a close frame (a network
// drop), so a reconnect lands on the other replica.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { binary, ROOT } from './podterm.js';
import { headerPairs, reverseProxy } from './reverse-proxy.js';

const SECRET = 'podterm-browser-tests-resume-secret-0123456789';
/** How long a replica may take to stop: its drain timeout (5 s here) and a margin. */
const STOP_TIMEOUT_MS = 15_000;
const IDENTITY_HEADERS = ['x-forwarded-user', 'x-forwarded-groups'];

/** A started process whose output is kept; `waitFor` resolves with the first match. */
function start(name, args, env) {
  const child = spawn(binary(), args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const waiters = new Set();
  const seen = (chunk) => {
    out += chunk;
    for (const w of waiters) w();
  };
  child.stdout.setEncoding('utf8').on('data', seen);
  child.stderr.setEncoding('utf8').on('data', seen);
  return {
    child,
    output: () => out,
    /** @param {RegExp} re */
    waitFor(re, timeout = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = out.match(re);
          if (m) {
            waiters.delete(check);
            resolve(m);
          }
        };
        waiters.add(check);
        check();
        child.once('exit', (code) => reject(new Error(`${name} exited (${code}) before printing ${re}:\n${out}`)));
        setTimeout(() => reject(new Error(`${name} printed no ${re} in ${timeout / 1000} s:\n${out}`)), timeout).unref();
      });
    },
    /**
     * Stops the process; one that outlives its drain timeout by far is a bug, reported with
     * its output (then killed, so the tests end).
     */
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      let timer;
      const late = new Promise((resolve) => {
        timer = setTimeout(resolve, STOP_TIMEOUT_MS, 'late');
      });
      const how = await Promise.race([once(child, 'exit'), late]);
      clearTimeout(timer);
      if (how === 'late') {
        child.kill('SIGKILL');
        await once(child, 'exit');
        throw new Error(`${name} did not stop within ${STOP_TIMEOUT_MS / 1000} s of ${signal}:\n${out.slice(-4000)}`);
      }
    },
  };
}

/**
 * A free port on 127.0.0.1 for a replica's peer listener. Every replica must be told every
 * peer address when it starts (PODTERM_PEERS, as the chart's headless Service name gives
 * them in a cluster), so these are chosen before the replicas start: the port is the
 * kernel's pick for port 0, released just before the replica binds it.
 */
async function freePort() {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = /** @type {net.AddressInfo} */ (server.address());
  server.close();
  await once(server, 'close');
  return port;
}

/**
 * Starts the fleet.
 * @param {{policy: string, grace?: string}} o the policy file's YAML; the resume grace
 */
export async function startFleet({ policy, grace = '30s' }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'podterm-fleet-'));
  const kubeconfig = path.join(dir, 'dev.kubeconfig');
  const policyFile = path.join(dir, 'policy.yaml');
  fs.writeFileSync(policyFile, policy);
  const procs = [];
  const cluster = start('dev-cluster', ['dev-cluster'], {
    PODTERM_DEV_CLUSTER_LISTEN: '127.0.0.1:0',
    PODTERM_DEV_KUBECONFIG: kubeconfig,
  });
  procs.push(cluster);
  const stopAll = async () => {
    const failures = [];
    for (const p of procs.reverse()) await p.stop().catch((e) => failures.push(e));
    fs.rmSync(dir, { recursive: true, force: true });
    if (failures.length) throw failures[0];
  };
  try {
    await cluster.waitFor(/https?:\/\/127\.0\.0\.1:\d+/);
    const peerPorts = [await freePort(), await freePort()];
    const peers = peerPorts.map((p) => `127.0.0.1:${p}`);
    const replicas = [];
    for (const peer of peers) {
      const replica = start(`replica ${peer}`, ['serve'], {
        PODTERM_KUBECONFIG: kubeconfig,
        PODTERM_LISTEN: '127.0.0.1:0',
        PODTERM_AUTH: 'headers',
        PODTERM_POLICY_FILE: policyFile,
        PODTERM_RESUME_GRACE: grace,
        PODTERM_RESUME_SECRET: SECRET,
        PODTERM_PEER_LISTEN: peer,
        PODTERM_ADVERTISE: peer,
        PODTERM_PEERS: peers.join(','),
        PODTERM_DRAIN_TIMEOUT: '5s',
      });
      procs.push(replica);
      replicas.push(replica);
    }
    const ports = [];
    for (const r of replicas) {
      // The start-up log line: {…"listen":"127.0.0.1:PORT",…,"message":"podterm serving"}.
      const m = await r.waitFor(/(?=[^\n]*podterm serving)[^\n]*\blisten\W+127\.0\.0\.1:(\d+)/);
      ports.push(Number(m[1]));
    }
    const proxy = await identityProxy(ports);
    return {
      url: (user) => `${proxy.url}${user}/`,
      proxy,
      peers,
      replicas,
      output: () => procs.map((p) => p.output()).join('\n'),
      async stop() {
        await proxy.close();
        await stopAll();
      },
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}

/**
 * The API gateway of the tests: /{user}/… is forwarded as `user` (group devs) to the replica
 * `route` names; `cut()` drops every WebSocket without a close frame; `seen` lists what each
 * replica was asked (method and path).
 * @param {number[]} ports the replicas' ports
 */
async function identityProxy(ports) {
  const state = { route: 0, seen: ports.map(() => /** @type {string[]} */ ([])) };
  /** @type {Set<net.Socket>} */
  const sockets = new Set();
  const proxy = await reverseProxy(
    (req) => {
      const m = (req.url ?? '').match(/^\/([a-z]+)(\/.*)$/);
      if (!m) return null;
      const [, user, path] = m;
      const replica = state.route;
      state.seen[replica].push(`${req.method} ${path}`);
      const headers = headerPairs(req.rawHeaders).filter(([k]) => !IDENTITY_HEADERS.includes(k.toLowerCase()));
      headers.push(['X-Forwarded-User', user], ['X-Forwarded-Groups', 'devs']);
      return { port: ports[replica], path, headers };
    },
    {
      notFound: 'no user in the path',
      onTunnel: (socket, conn) => {
        sockets.add(socket).add(conn);
        const forget = () => {
          sockets.delete(socket);
          sockets.delete(conn);
        };
        conn.on('close', forget);
        socket.on('close', forget);
      },
    },
  );
  return {
    url: `http://127.0.0.1:${proxy.port}/`,
    /** which replica new connections go to (0 or 1) */
    set route(i) {
      state.route = i;
    },
    get route() {
      return state.route;
    },
    seen: state.seen,
    /** Drops every open WebSocket at once, both ways, without a close frame. (Not with
     * resetAndDestroy: a socket reset that way kept Node 20 spinning at exit, in
     * CleanupHandles, in about one run of four.) */
    cut() {
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    async close() {
      this.cut();
      await proxy.close();
    },
  };
}
