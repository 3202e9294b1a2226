/**
 * HTTP/1.x head parsing from captured bytes: request line, headers, response status.
 * Input is whatever the kernel captured (up to the capture size), so heads may be cut off;
 * a cut-off head still yields the request line and the headers seen so far.
 * This runs for every request, so it scans the bytes in place and creates only the strings
 * its callers read: method, path, query, and the values of the headers they select.
 */
import { CR, LF, LOWER, SP, indexOfCrlf, isSpace, leadingEmptyLines, startsWithIgnoringCase } from './framing.ts';
import { decodeSafeText } from './safe-text.ts';

export interface HttpRequestHead {
  method: string;
  /** Path without query string. */
  path: string;
  /** Raw query string without '?', or null. */
  query: string | null;
  version: string;
  /** The selected headers present, by lowercased name; repeated headers keep their first value. */
  headers: ReadonlyMap<string, string>;
  /** The blank line ending the head was seen. */
  complete: boolean;
}

export interface HttpResponseHead {
  status: number;
  version: string;
}

/** The request headers a caller reads, matched against the raw bytes ignoring case. */
export class HeaderSelection {
  /** Lowercased names and their bytes, by length: a header is compared only with names as long as it. */
  readonly #byLength: ({ name: string; bytes: Buffer }[] | undefined)[] = [];
  /** 1 for the bytes a header line must start with to hold a selected name; the others are skipped. */
  readonly #firstBytes = new Uint8Array(256);

  constructor(names: Iterable<string>) {
    const unique = new Set<string>();
    for (const name of names) {
      const lower = name.toLowerCase();
      // A name outside Latin-1 can never match captured bytes.
      if (lower !== '' && Buffer.from(lower, 'latin1').toString('latin1') === lower) unique.add(lower);
    }
    for (const name of unique) (this.#byLength[name.length] ??= []).push({ name, bytes: Buffer.from(name, 'latin1') });
    const firsts = new Set([...unique].map((name) => name.charCodeAt(0)));
    // Whitespace too: it is trimmed from names.
    for (let c = 0; c < 256; c++) if (firsts.has(LOWER[c]!) || (unique.size > 0 && isSpace(c))) this.#firstBytes[c] = 1;
  }

  /** A header line starting with byte `c` may hold a selected name. */
  mayStartWith(c: number): boolean {
    return this.#firstBytes[c] === 1;
  }

  /** The selected name that buf[start, end) spells, ignoring case, else undefined. */
  nameAt(buf: Buffer, start: number, end: number): string | undefined {
    const candidates = this.#byLength[end - start];
    if (candidates === undefined) return undefined;
    for (const { name, bytes } of candidates) if (startsWithIgnoringCase(buf, start, bytes)) return name;
    return undefined;
  }
}

const NO_HEADERS = new HeaderSelection([]);
const NO_VALUES: ReadonlyMap<string, string> = new Map();

const MAX_LINE = 8192;
const MAX_METHOD = 20;
const DASH = 0x2d;
const COLON = 0x3a;
const QUESTION = 0x3f;
const HASH = 0x23;
const SLASH = 0x2f;
const HTTP_1 = Buffer.from('HTTP/1.', 'latin1');
/** "HTTP/1.x" */
const VERSION_LENGTH = 8;
/** Methods as constants, so that most requests need no string for theirs. */
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH'].map((name) => ({ name, bytes: Buffer.from(name, 'latin1') }));

/**
 * Returns null when the bytes do not start with an HTTP/1.x request line. Only the headers
 * in `wanted` are read.
 */
export function parseRequestHead(buf: Buffer, wanted: HeaderSelection = NO_HEADERS): HttpRequestHead | null {
  // METHOD SP target SP HTTP/1.x, then CRLF or the end of the capture.
  const start = leadingEmptyLines(buf);
  const methodEnd = methodEndAt(buf, start);
  if (methodEnd === -1) return null;
  const targetEnd = targetEndAt(buf, methodEnd + 1);
  if (targetEnd === -1) return null;
  const version = versionAt(buf, targetEnd + 1);
  if (version === null) return null;
  const lineEnd = targetEnd + 1 + VERSION_LENGTH;
  if (lineEnd === buf.length) {
    // Not a single CRLF captured: a bare request line, unless too long to be one.
    if (lineEnd - start > MAX_LINE) return null;
  } else if (buf[lineEnd] !== CR || buf[lineEnd + 1] !== LF) {
    return null;
  }
  const head: HttpRequestHead = {
    method: methodName(buf, start, methodEnd),
    path: '/',
    query: null,
    version,
    headers: NO_VALUES,
    complete: false,
  };
  readTarget(head, buf, methodEnd + 1, targetEnd);
  readHeaders(head, buf, lineEnd + 2, wanted);
  return head;
}

/**
 * A response's status: the kernel's (bpf/io.bpf.h final_response_status, 0 when it read none)
 * or else the captured head's; null when neither holds a status line.
 */
export function responseStatusOf(kernelStatus: number, head: Buffer): number | null {
  return kernelStatus !== 0 ? kernelStatus : (parseResponseHead(head)?.status ?? null);
}

/** Returns null when the bytes do not start with an HTTP/1.x status line. */
export function parseResponseHead(buf: Buffer): HttpResponseHead | null {
  // HTTP/1.x SP 3DIGIT, then SP or the end of the status line.
  const version = versionAt(buf, 0);
  if (version === null || buf[VERSION_LENGTH] !== SP) return null;
  let status = 0;
  for (let i = VERSION_LENGTH + 1; i < VERSION_LENGTH + 4; i++) {
    const c = buf[i];
    if (!isDigit(c)) return null;
    status = status * 10 + (c - 0x30);
  }
  const after = buf[VERSION_LENGTH + 4];
  if (after === undefined || after === SP || (after === CR && buf[VERSION_LENGTH + 5] === LF)) return { status, version };
  return null;
}

function isDigit(c: number | undefined): c is number {
  return c !== undefined && c >= 0x30 && c <= 0x39;
}

function isUpper(c: number | undefined): boolean {
  return c !== undefined && c >= 0x41 && c <= 0x5a;
}

/** Index of the space after a method ([A-Z][A-Z-]{0,19}) starting at `start`, or -1. */
function methodEndAt(buf: Buffer, start: number): number {
  if (!isUpper(buf[start])) return -1;
  for (let i = start + 1; i <= start + MAX_METHOD; i++) {
    const c = buf[i];
    if (c === SP) return i;
    if (c !== DASH && !isUpper(c)) return -1;
  }
  return -1;
}

/**
 * Index of the space after a non-empty target starting at `start`, or -1 if the line ends
 * first. A CR or LF, bare or not, ends the line: a target holding one is not HTTP (a bare LF
 * there let garbage through as a request line).
 */
function targetEndAt(buf: Buffer, start: number): number {
  for (let i = start; i < buf.length; i++) {
    const c = buf[i];
    if (c === SP) return i > start ? i : -1;
    if (c === LF || c === CR) return -1;
  }
  return -1;
}

/** "1.0" or "1.1" when buf holds "HTTP/1.0" or "HTTP/1.1" at `at`, else null. */
function versionAt(buf: Buffer, at: number): string | null {
  if (!bytesAt(buf, at, HTTP_1)) return null;
  const minor = buf[at + HTTP_1.length];
  return minor === 0x30 ? '1.0' : minor === 0x31 ? '1.1' : null;
}

function methodName(buf: Buffer, start: number, end: number): string {
  for (const { name, bytes } of METHODS) if (bytes.length === end - start && bytesAt(buf, start, bytes)) return name;
  return buf.toString('latin1', start, end);
}

/** buf holds `bytes` at `at`. */
function bytesAt(buf: Buffer, at: number, bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) if (buf[at + i] !== bytes[i]) return false;
  return true;
}

/**
 * Path and query of the target in buf[start, end): origin-form (/a?b), absolute-form
 * (http://h/a?b), '*' or authority-form. The fragment is dropped.
 */
function readTarget(head: HttpRequestHead, buf: Buffer, start: number, end: number): void {
  const from = pathStart(buf, start, end);
  if (from === -1) return; // absolute-form without a path: '/'
  let stop = end;
  let q = -1;
  for (let i = from; i < end; i++) {
    const c = buf[i];
    if (c === HASH) {
      stop = i;
      break;
    }
    if (c === QUESTION && q === -1) q = i;
  }
  // Decoded in two parts: '?' is ASCII, so it never splits a UTF-8 sequence.
  if (q === -1) {
    head.path = decodeSafeText(buf, from, stop);
  } else {
    head.path = decodeSafeText(buf, from, q);
    head.query = decodeSafeText(buf, q + 1, stop);
  }
}

/**
 * Where the path starts: after the authority when the target's first "://" sits at offset 1
 * to 9 (a scheme), else at the start. -1 for an absolute-form target without a path.
 */
function pathStart(buf: Buffer, start: number, end: number): number {
  for (let i = start; i < start + 10 && i + 2 < end; i++) {
    if (buf[i] !== COLON || buf[i + 1] !== SLASH || buf[i + 2] !== SLASH) continue;
    if (i === start) return start;
    for (let j = i + 3; j < end; j++) if (buf[j] === SLASH) return j;
    return -1;
  }
  return start;
}

/** Reads the header lines from `pos` on: up to the blank line, else all the lines captured whole. */
function readHeaders(head: HttpRequestHead, buf: Buffer, pos: number, wanted: HeaderSelection): void {
  let values: Map<string, string> | null = null;
  for (;;) {
    if (buf[pos] === CR && buf[pos + 1] === LF) {
      head.complete = true;
      break;
    }
    const lineEnd = indexOfCrlf(buf, pos);
    if (lineEnd === -1) break; // a line cut off by the capture size
    const colon = wanted.mayStartWith(buf[pos]!) ? indexOfColon(buf, pos, lineEnd) : -1;
    if (colon > pos) {
      const nameStart = trimStart(buf, pos, colon);
      const name = wanted.nameAt(buf, nameStart, trimEnd(buf, nameStart, colon));
      if (name !== undefined && !values?.has(name)) {
        const valueStart = trimStart(buf, colon + 1, lineEnd);
        values ??= new Map();
        values.set(name, decodeSafeText(buf, valueStart, trimEnd(buf, valueStart, lineEnd)));
      }
    }
    pos = lineEnd + 2;
  }
  if (values !== null) head.headers = values;
}

function indexOfColon(buf: Buffer, from: number, to: number): number {
  for (let i = from; i < to; i++) if (buf[i] === COLON) return i;
  return -1;
}

/** First index in [from, to) that is not whitespace, else `to`. */
function trimStart(buf: Buffer, from: number, to: number): number {
  while (from < to && isSpace(buf[from])) from++;
  return from;
}

/** One past the last index in [from, to) that is not whitespace, else `from`. */
function trimEnd(buf: Buffer, from: number, to: number): number {
  while (to > from && isSpace(buf[to - 1])) to--;
  return to;
}
