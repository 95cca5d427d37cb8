// The gateway's JSON endpoints, asked with relative URLs as the signed-in user.

/** A failed request, with the message of the Kubernetes `Status` it answered, if any. */
export class ApiError extends Error {
  /**
   * @param {number} code HTTP status (0 when the gateway could not be reached)
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/**
 * Asks the gateway and reads its JSON answer; an answer that is not a success throws an
 * ApiError with its `Status` message.
 * @param {string} path relative to the page
 * @param {string} [method]
 */
export async function requestJSON(path, method = 'GET') {
  let res;
  try {
    res = await fetch(path, { method, headers: { Accept: 'application/json' } });
  } catch {
    throw new ApiError(0, 'the gateway cannot be reached');
  }
  const text = await res.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  if (!res.ok) throw new ApiError(res.status, body?.message || `HTTP ${res.status}`);
  if (body === null) throw new ApiError(res.status, 'the answer is not JSON');
  return body;
}

/** @param {string} path relative to the page */
export async function getJSON(path) {
  return requestJSON(path);
}

const enc = encodeURIComponent;

/** @returns {Promise<string[]>} */
export async function clusters() {
  return getJSON('api/clusters');
}

/** @returns {Promise<string[]>} */
export async function namespaces(cluster) {
  const list = await getJSON(`clusters/${enc(cluster)}/api/v1/namespaces`);
  return (list.items ?? []).map((n) => n.metadata.name).sort();
}

/** @returns {Promise<any[]>} pods, sorted by name */
export async function pods(cluster, namespace) {
  const list = await getJSON(`clusters/${enc(cluster)}/api/v1/namespaces/${enc(namespace)}/pods`);
  return (list.items ?? []).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
}

export async function pod(cluster, namespace, name) {
  return getJSON(`clusters/${enc(cluster)}/api/v1/namespaces/${enc(namespace)}/pods/${enc(name)}`);
}

/** A pod's container names, and the one to pick first (kubectl's default-container annotation). */
/**
 * Whether a pod may have a shell: not when it carries `podterm.dev/shell: none` (the dev
 * cluster's in-process pods; distroless pods, where a platform sets it).
 * @param {any} p
 */
export function hasShell(p) {
  return p?.metadata?.annotations?.['podterm.dev/shell'] !== 'none';
}

export function containersOf(p) {
  const regular = (p?.spec?.containers ?? []).map((c) => c.name);
  const init = (p?.spec?.initContainers ?? []).map((c) => c.name);
  const debug = (p?.spec?.ephemeralContainers ?? []).map((c) => c.name);
  const wanted = p?.metadata?.annotations?.['kubectl.kubernetes.io/default-container'];
  /** @type {Map<string, 'init' | 'debug'>} the containers that are not regular ones */
  const kinds = new Map([...init.map((n) => [n, 'init']), ...debug.map((n) => [n, 'debug'])]);
  return {
    names: [...regular, ...init, ...debug],
    regular,
    kinds,
    preferred: regular.includes(wanted) ? wanted : regular[0],
  };
}

/** A container's label in the pickers: init and debug (ephemeral) containers are marked. */
export function containerLabel(name, kinds) {
  const kind = kinds?.get(name);
  return kind ? `${name} (${kind})` : name;
}

/** What a pod shows next to its name: its phase, or why it is not running. */
export function phaseOf(p) {
  if (p?.metadata?.deletionTimestamp) return 'Terminating';
  const waiting = (p?.status?.containerStatuses ?? []).find((c) => c.state?.waiting?.reason);
  return waiting?.state.waiting.reason ?? p?.status?.phase ?? 'Unknown';
}

/**
 * Who the gateway says the user is, and the mode the policy gives them in that namespace.
 * `mode` is null (and `denied` says why) where no policy rule lets them exec. A gateway
 * without a policy endpoint (404) means a full shell.
 * @returns {Promise<{user?: string, groups?: string[], mode: 'shell' | 'restricted' | 'none' | null,
 *   rule?: string | null, allow?: string[][], denied?: string | null, logs?: boolean,
 *   files?: {read: string[], write: string[]}, debug_images?: string[], file_max_bytes?: number}>}
 */
export async function whoami(cluster, namespace) {
  try {
    return await getJSON(`api/whoami?cluster=${enc(cluster)}&namespace=${enc(namespace)}`);
  } catch (e) {
    if (e instanceof ApiError && e.code === 404) return { mode: 'shell' };
    throw e;
  }
}
