// Debug containers (`pods/ephemeralcontainers`, as the user): the page adds one to a pod with
// no shell (distroless), or reuses a running one of the same image, then attaches to it.

/**
 * The pod's ephemeral containers with their image and whether each is running.
 * @param {any} pod
 * @returns {{name: string, image: string, running: boolean, target?: string}[]}
 */
export function debugContainers(pod) {
  const statuses = new Map((pod?.status?.ephemeralContainerStatuses ?? []).map((s) => [s.name, s]));
  return (pod?.spec?.ephemeralContainers ?? []).map((c) => ({
    name: c.name,
    image: c.image,
    target: c.targetContainerName,
    running: Boolean(statuses.get(c.name)?.state?.running),
  }));
}

/** A running debug container of `image` in `pod`, to reuse; null when there is none. */
export function reusable(pod, image) {
  return debugContainers(pod).find((c) => c.image === image && c.running) ?? null;
}

/** A fresh name, as kubectl debug makes them (`debugger-xxxxx`). */
export function debugName(random = Math.random) {
  const letters = 'bcdfghjklmnpqrstvwxz2456789';
  let s = '';
  for (let i = 0; i < 5; i += 1) s += letters[Math.floor(random() * letters.length)];
  return `debugger-${s}`;
}

/**
 * The strategic merge patch that adds one debug container.
 * @param {{name: string, image: string, target?: string}} c
 */
export function debugPatch(c) {
  const container = { name: c.name, image: c.image, stdin: true, tty: true };
  if (c.target) container.targetContainerName = c.target;
  return { spec: { ephemeralContainers: [container] } };
}

/**
 * Adds a debug container (or finds one to reuse) and waits until it runs.
 * @param {import('./route.js').Target} t the pod
 * @param {{image: string, target?: string}} want
 * @param {{pod: (c: string, n: string, p: string) => Promise<any>}} api
 * @returns {Promise<{name: string, reused: boolean}>}
 */
export async function ensureDebugContainer(t, want, api, timeoutMs = 60_000) {
  const enc = encodeURIComponent;
  const before = await api.pod(t.cluster, t.namespace, t.pod);
  const existing = reusable(before, want.image);
  if (existing) return { name: existing.name, reused: true };
  const name = debugName();
  const path = `clusters/${enc(t.cluster)}/api/v1/namespaces/${enc(t.namespace)}/pods/${enc(t.pod)}/ephemeralcontainers`;
  const res = await fetch(path, {
    method: 'PATCH',
    headers: { 'Content-Type': 'application/strategic-merge-patch+json', Accept: 'application/json' },
    body: JSON.stringify(debugPatch({ name, image: want.image, target: want.target })),
  });
  if (!res.ok) {
    let message = `HTTP ${res.status}`;
    try {
      message = (await res.json()).message || message;
    } catch {
      /* not a Status */
    }
    throw new Error(message);
  }
  // The container starts in the background (an image pull): ask until it runs.
  const deadline = Date.now() + timeoutMs;
  let wait = 200;
  for (;;) {
    const pod = await api.pod(t.cluster, t.namespace, t.pod);
    const mine = debugContainers(pod).find((c) => c.name === name);
    if (mine?.running) return { name, reused: false };
    const waiting = (pod?.status?.ephemeralContainerStatuses ?? []).find((s) => s.name === name)?.state?.waiting;
    if (waiting?.reason && /ErrImagePull|ImagePullBackOff|InvalidImageName/.test(waiting.reason)) {
      throw new Error(`the debug container cannot start: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}`);
    }
    if (Date.now() > deadline) throw new Error(`the debug container ${name} did not start within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, wait));
    wait = Math.min(2000, wait * 2);
  }
}
