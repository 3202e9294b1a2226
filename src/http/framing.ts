/**
 * HTTP/1.x message framing on captured bytes: where the first request in a buffer ends.
 * Used to split the bytes of pipelined requests that the server read in one batch.
 */

/** Bytes of leading CRLFs, which servers ignore before a request line (RFC 9112 2.2). */
export function leadingEmptyLines(buf: Buffer): number {
  let i = 0;
  while (i + 1 < buf.length && buf[i] === 0x0d && buf[i + 1] === 0x0a) i += 2;
  return i;
}

/**
 * Total length (head + body) of the request starting at buf[0], when the head is complete:
 * from Content-Length, or from chunked framing if its last chunk is in the buffer. The
 * result may exceed buf.length (a body longer than the capture). null when unknown.
 */
export function requestLength(buf: Buffer): number | null {
  const skip = leadingEmptyLines(buf);
  const headEnd = buf.indexOf('\r\n\r\n', skip);
  if (headEnd === -1) return null;
  const bodyStart = headEnd + 4;
  const head = buf.toString('latin1', skip, headEnd).toLowerCase();
  if (/\r\ntransfer-encoding:[^\r]*chunked/.test(head)) return chunkedEnd(buf, bodyStart);
  const cl = /\r\ncontent-length:\s*(\d+)\s*(?:\r|$)/.exec(head);
  return bodyStart + (cl ? Number(cl[1]) : 0);
}

/** End of a chunked body starting at `pos` (after the trailer), or null if not all captured. */
function chunkedEnd(buf: Buffer, pos: number): number | null {
  for (;;) {
    const lineEnd = buf.indexOf('\r\n', pos);
    if (lineEnd === -1) return null;
    const size = parseInt(buf.toString('latin1', pos, lineEnd).split(';')[0]!.trim(), 16);
    if (Number.isNaN(size)) return null;
    pos = lineEnd + 2;
    if (size === 0) {
      // Trailer section: header lines until an empty line.
      for (;;) {
        const end = buf.indexOf('\r\n', pos);
        if (end === -1) return null;
        if (end === pos) return end + 2;
        pos = end + 2;
      }
    }
    pos += size + 2;
    if (pos > buf.length) return null;
  }
}
