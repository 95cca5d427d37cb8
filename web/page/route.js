// The page's location: which terminal a URL opens, as `#/{cluster}/{namespace}/{pod}[/{container}]`.

/**
 * @typedef {{cluster: string, namespace: string, pod: string, container?: string}} Target
 */

/**
 * Reads a target from a location hash; null when it names no pod.
 * @param {string} hash e.g. "#/dev/default/web-0/app"
 * @returns {Target | null}
 */
export function parse(hash) {
  const parts = hash.replace(/^#\/?/, '').split('/').filter((p) => p !== '');
  if (parts.length < 3 || parts.length > 4) return null;
  let decoded;
  try {
    decoded = parts.map(decodeURIComponent);
  } catch {
    return null;
  }
  const [cluster, namespace, pod, container] = decoded;
  return container ? { cluster, namespace, pod, container } : { cluster, namespace, pod };
}

/**
 * The hash for a target.
 * @param {Target} t
 */
export function format(t) {
  const parts = [t.cluster, t.namespace, t.pod];
  if (t.container) parts.push(t.container);
  return `#/${parts.map(encodeURIComponent).join('/')}`;
}
