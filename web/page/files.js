// Files in and out of a container (`/api/files/…`, src/toolkit/files.rs): downloads with
// progress read from the stream, uploads with progress (XMLHttpRequest's upload events), both
// cancellable; the gateway's refusal `Status` message when one fails.

/**
 * The files path relative to the page.
 * @param {import('./route.js').Target} t
 * @param {string} path absolute, in the container
 */
export function filesPath(t, path) {
  const enc = encodeURIComponent;
  const q = new URLSearchParams();
  if (t.container) q.append('container', t.container);
  q.append('path', path);
  return `api/files/${enc(t.cluster)}/${enc(t.namespace)}/${enc(t.pod)}?${q}`;
}

/** `dir` joined with `name`, one `/` between. */
export function joinPath(dir, name) {
  return `${dir.replace(/\/+$/, '')}/${name}`;
}

/** The message of a refusal body (a Kubernetes `Status`), or the HTTP code. */
function messageOf(code, text) {
  try {
    return JSON.parse(text).message || `HTTP ${code}`;
  } catch {
    return text.trim() || `HTTP ${code}`;
  }
}

/**
 * Downloads `path`: resolves with the file (or the directory's tar) as a Blob and its name.
 * @param {import('./route.js').Target} t
 * @param {string} path
 * @param {{onProgress?: (done: number, total: number | null) => void, signal?: AbortSignal}} o
 * @returns {Promise<{blob: Blob, name: string}>}
 */
export async function download(t, path, o = {}) {
  const res = await fetch(filesPath(t, path), { signal: o.signal });
  if (!res.ok) throw new Error(messageOf(res.status, await res.text()));
  const total = Number(res.headers.get('content-length')) || null;
  const disposition = res.headers.get('content-disposition') ?? '';
  const star = disposition.match(/filename\*=UTF-8''([^;]+)/);
  const name = star ? decodeURIComponent(star[1]) : path.split('/').pop() || 'download';
  const reader = res.body.getReader();
  const parts = [];
  let done = 0;
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (e) {
      if (o.signal?.aborted) throw e;
      throw new Error('the download was cut off: podterm stopped it (a refused entry in the archive, or the connection broke)');
    }
    if (chunk.done) break;
    parts.push(chunk.value);
    done += chunk.value.length;
    o.onProgress?.(done, total);
  }
  if (total !== null && done !== total) throw new Error(`the download stopped at ${done} of ${total} bytes`);
  return { blob: new Blob(parts), name };
}

/** Hands a Blob to the browser as a download named `name`. */
export function save(blob, name) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
}

/**
 * Uploads `file` to `path`: resolves with the gateway's answer (`{path, bytes, sha256}`).
 * @param {import('./route.js').Target} t
 * @param {Blob} file
 * @param {string} path
 * @param {{onProgress?: (done: number, total: number) => void}} o
 * @returns {{done: Promise<any>, abort: () => void}}
 */
export function upload(t, file, path, o = {}) {
  const xhr = new XMLHttpRequest();
  const done = new Promise((resolve, reject) => {
    xhr.open('PUT', filesPath(t, path));
    xhr.upload.onprogress = (e) => o.onProgress?.(e.loaded, e.total || file.size);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve(JSON.parse(xhr.responseText));
        } catch {
          resolve({});
        }
      } else reject(new Error(messageOf(xhr.status, xhr.responseText)));
    };
    xhr.onerror = () => reject(new Error('the gateway cannot be reached'));
    xhr.onabort = () => reject(new Error('cancelled'));
    xhr.send(file);
  });
  return { done, abort: () => xhr.abort() };
}

/** `n` bytes for people: 1.5 MiB. */
export function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}
