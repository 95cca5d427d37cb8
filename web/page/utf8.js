// Byte-level helpers for writing command output into the terminal without breaking UTF-8.

/**
 * Length of the complete UTF-8 prefix of `bytes`: a multi-byte sequence cut at the end of a
 * frame is left for the next frame. Invalid bytes count as complete (the terminal shows them
 * as replacement characters).
 * @param {Uint8Array} bytes
 */
export function completeLength(bytes) {
  const n = bytes.length;
  // A sequence is at most 4 bytes: look back at most 3 for its lead byte.
  for (let back = 1; back <= Math.min(3, n); back += 1) {
    const b = bytes[n - back];
    if ((b & 0xc0) === 0x80) continue; // continuation byte: keep looking for the lead
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return need > back ? n - back : n;
  }
  return n;
}

/** Keeps one stream's unfinished UTF-8 tail between frames. */
export class Utf8Carry {
  constructor() {
    /** @type {Uint8Array} */
    this.tail = new Uint8Array(0);
  }

  /**
   * The complete part of `tail + bytes`; an unfinished sequence at the end waits.
   * @param {Uint8Array} bytes
   */
  push(bytes) {
    let all = bytes;
    if (this.tail.length > 0) {
      all = new Uint8Array(this.tail.length + bytes.length);
      all.set(this.tail);
      all.set(bytes, this.tail.length);
    }
    const end = completeLength(all);
    this.tail = all.slice(end);
    return all.subarray(0, end);
  }

  /** Whatever is left (at the end of the stream). */
  flush() {
    const rest = this.tail;
    this.tail = new Uint8Array(0);
    return rest;
  }
}

/**
 * Turns every LF into CR LF, as a tty's output processing would (for output of commands run
 * without a tty). LF never occurs inside a multi-byte UTF-8 sequence, so this is byte-safe.
 * @param {Uint8Array} bytes
 */
export function lfToCrlf(bytes) {
  let lf = 0;
  for (const b of bytes) if (b === 0x0a) lf += 1;
  if (lf === 0) return bytes;
  const out = new Uint8Array(bytes.length + lf);
  let j = 0;
  for (let i = 0; i < bytes.length; i += 1) {
    if (bytes[i] === 0x0a && (i === 0 || bytes[i - 1] !== 0x0d)) out[j++] = 0x0d;
    out[j++] = bytes[i];
  }
  return out.subarray(0, j);
}
