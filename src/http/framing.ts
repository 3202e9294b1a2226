/**
 * HTTP/1.x message framing on captured bytes: where the first request in a buffer ends.
 * Used to split the bytes of pipelined requests that the server read in one batch.
 * Also the byte-level scanning that head parsing shares: heads are scanned as bytes, never
 * converted to strings as a whole (this runs for every request).
 */

export const CR = 0x0d;
export const LF = 0x0a;
export const SP = 0x20;

/** Latin-1 lowercase of each byte, as String.prototype.toLowerCase maps it. */
export const LOWER = new Uint8Array(256).map((_, c) => ((c >= 0x41 && c <= 0x5a) || (c >= 0xc0 && c <= 0xde && c !== 0xd7) ? c + 0x20 : c));

/** The bytes String.prototype.trim and RegExp \s treat as whitespace, within Latin-1. */
export function isSpace(c: number | undefined): boolean {
  return c === SP || (c !== undefined && c >= 0x09 && c <= 0x0d) || c === 0xa0;
}

/** Bytes of leading CRLFs, which servers ignore before a request line (RFC 9112 2.2). */
export function leadingEmptyLines(buf: Buffer): number {
  let i = 0;
  while (i + 1 < buf.length && buf[i] === CR && buf[i + 1] === LF) i += 2;
  return i;
}

/** Bytes scanned in JS before handing over to the native search, worth its call only on long lines. */
const SHORT_SCAN = 64;

/** Index of the first CRLF at or after `from`, or -1. */
export function indexOfCrlf(buf: Buffer, from: number): number {
  // Every other byte is enough: one of a CRLF's two bytes always sits at a checked index.
  const shortEnd = Math.min(from + SHORT_SCAN, buf.length);
  let i = from + 1;
  for (; i < shortEnd; i += 2) {
    const c = buf[i];
    if (c === LF) {
      if (buf[i - 1] === CR) return i - 1;
    } else if (c === CR && buf[i + 1] === LF) {
      return i;
    }
  }
  // Unchecked from i - 1 on: a CR there is found through the LF that follows it.
  for (let lf = buf.indexOf(LF, i); lf !== -1; lf = buf.indexOf(LF, lf + 1)) if (buf[lf - 1] === CR) return lf - 1;
  return -1;
}

/** buf holds `lowercase` at `at`, ignoring case (Latin-1, as String.prototype.toLowerCase). */
export function startsWithIgnoringCase(buf: Buffer, at: number, lowercase: Uint8Array): boolean {
  if (at + lowercase.length > buf.length) return false;
  for (let i = 0; i < lowercase.length; i++) if (LOWER[buf[at + i]!] !== lowercase[i]) return false;
  return true;
}

const TRANSFER_ENCODING = Buffer.from('transfer-encoding:', 'latin1');
const CONTENT_LENGTH = Buffer.from('content-length:', 'latin1');
const CHUNKED = Buffer.from('chunked', 'latin1');

/**
 * Total length (head + body) of the request starting at buf[0], when the head is complete:
 * from Content-Length, or from chunked framing if its last chunk is in the buffer. The
 * result may exceed buf.length (a body longer than the capture). null when unknown.
 */
export function requestLength(buf: Buffer): number | null {
  // Header lines are those after the request line, up to the first empty line.
  let lineEnd = indexOfCrlf(buf, leadingEmptyLines(buf));
  let chunked = false;
  let contentLength: number | null = null;
  for (;;) {
    if (lineEnd === -1) return null;
    const line = lineEnd + 2;
    if (buf[line] === CR && buf[line + 1] === LF) {
      const bodyStart = line + 2;
      if (chunked) return chunkedEnd(buf, bodyStart);
      return bodyStart + (contentLength ?? 0);
    }
    if (!chunked && startsWithIgnoringCase(buf, line, TRANSFER_ENCODING)) {
      chunked = mentionsChunked(buf, line + TRANSFER_ENCODING.length);
    } else if (contentLength === null && startsWithIgnoringCase(buf, line, CONTENT_LENGTH)) {
      contentLength = contentLengthValue(buf, line + CONTENT_LENGTH.length);
    }
    lineEnd = indexOfCrlf(buf, line);
  }
}

/** "chunked", in any case, before the next CR (the line's end). */
function mentionsChunked(buf: Buffer, from: number): boolean {
  for (let i = from; i < buf.length && buf[i] !== CR; i++) {
    if (startsWithIgnoringCase(buf, i, CHUNKED)) return true;
  }
  return false;
}

/**
 * The Content-Length value starting at `from`, or null when malformed. Whitespace before the
 * digits may run across line ends (obs-fold) but not past the empty line ending the head;
 * after them, only whitespace up to the line's end.
 */
function contentLengthValue(buf: Buffer, from: number): number | null {
  let i = from;
  while (isSpace(buf[i])) {
    if (buf[i] === CR && buf[i + 1] === LF && buf[i + 2] === CR && buf[i + 3] === LF) return null;
    i++;
  }
  const digitsStart = i;
  let value = 0;
  for (let c = buf[i]; c !== undefined && c >= 0x30 && c <= 0x39; c = buf[++i]) value = value * 10 + (c - 0x30);
  if (i === digitsStart) return null;
  // Beyond 15 digits the running product may round differently from Number('…').
  if (i - digitsStart > 15) value = Number(buf.toString('latin1', digitsStart, i));
  for (; isSpace(buf[i]); i++) if (buf[i] === CR) return value;
  return null;
}

/** End of a chunked body starting at `pos` (after the trailer), or null if not all captured. */
function chunkedEnd(buf: Buffer, pos: number): number | null {
  for (;;) {
    const lineEnd = indexOfCrlf(buf, pos);
    if (lineEnd === -1) return null;
    const size = parseInt(buf.toString('latin1', pos, lineEnd).split(';')[0]!.trim(), 16);
    if (Number.isNaN(size)) return null;
    pos = lineEnd + 2;
    if (size === 0) {
      // Trailer section: header lines until an empty line.
      for (;;) {
        const end = indexOfCrlf(buf, pos);
        if (end === -1) return null;
        if (end === pos) return end + 2;
        pos = end + 2;
      }
    }
    pos += size + 2;
    if (pos > buf.length) return null;
  }
}
