/**
 * HTTP/1.x head parsing from captured bytes: request line, headers, response status.
 * Input is whatever the kernel captured (up to the capture size), so heads may be cut off;
 * a cut-off head still yields the request line and the headers seen so far.
 */
import { leadingEmptyLines } from './framing.ts';

export interface HttpRequestHead {
  method: string;
  /** Path without query string. */
  path: string;
  /** Raw query string without '?', or null. */
  query: string | null;
  version: string;
  /** Lowercased names; repeated headers keep their first value. */
  headers: Map<string, string>;
  /** The blank line ending the head was seen. */
  complete: boolean;
}

export interface HttpResponseHead {
  status: number;
  version: string;
  headers: Map<string, string>;
}

const METHOD = /^[A-Z][A-Z-]{0,19}$/;
const MAX_LINE = 8192;

/** Splits the head into lines; stops at the blank line or the end of the capture. */
function headLines(buf: Buffer): { lines: string[]; complete: boolean } {
  const end = buf.indexOf('\r\n\r\n');
  const text = buf.toString('latin1', 0, end === -1 ? buf.length : end);
  const lines = text.split('\r\n');
  // Without the terminator the last line may be cut mid-header: drop it.
  if (end === -1 && lines.length > 1) lines.pop();
  return { lines, complete: end !== -1 };
}

function parseHeaders(lines: string[]): Map<string, string> {
  const headers = new Map<string, string>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!headers.has(name)) headers.set(name, line.slice(colon + 1).trim());
  }
  return headers;
}

/** Returns null when the bytes do not start with an HTTP/1.x request line. */
export function parseRequestHead(raw: Buffer): HttpRequestHead | null {
  const buf = raw.subarray(leadingEmptyLines(raw));
  const lineEnd = buf.indexOf('\r\n');
  if (lineEnd === -1 && buf.length > MAX_LINE) return null;
  const { lines, complete } = headLines(buf);
  const first = lines[0] ?? '';
  const parts = first.split(' ');
  if (parts.length !== 3) return null;
  const [method, target, version] = parts as [string, string, string];
  if (!METHOD.test(method) || !/^HTTP\/1\.[01]$/.test(version) || target.length === 0) return null;
  const { path, query } = splitTarget(target);
  return { method, path, query, version: version.slice(5), headers: parseHeaders(lines), complete };
}

/** Handles origin-form (/a?b), absolute-form (http://h/a?b), and '*' / authority-form. */
export function splitTarget(target: string): { path: string; query: string | null } {
  let t = target;
  const scheme = t.indexOf('://');
  if (scheme > 0 && scheme < 10) {
    const slash = t.indexOf('/', scheme + 3);
    t = slash === -1 ? '/' : t.slice(slash);
  }
  const hash = t.indexOf('#');
  if (hash !== -1) t = t.slice(0, hash);
  const q = t.indexOf('?');
  return q === -1 ? { path: t, query: null } : { path: t.slice(0, q), query: t.slice(q + 1) };
}

/** Returns null when the bytes do not start with an HTTP/1.x status line. */
export function parseResponseHead(buf: Buffer): HttpResponseHead | null {
  const { lines } = headLines(buf);
  const m = /^HTTP\/(1\.[01]) (\d{3})(?: |$)/.exec(lines[0] ?? '');
  if (!m) return null;
  return { status: Number(m[2]), version: m[1] as string, headers: parseHeaders(lines) };
}
