/**
 * Feeding recorded chunks to the decoder the ways a capture may deliver them: as recorded,
 * re-cut at other boundaries, one frame per chunk, with only a prefix of each chunk captured,
 * or joined mid-way.
 */
import { parseRequestHead, HeaderSelection } from '../../src/http/parse.ts';
import { newHttp2Counters, type Http2Counters } from '../../src/http2/counters.ts';
import { Http2Connection, type Http2ConnectionOptions, type Http2StreamRecord, type UpgradedRequest } from '../../src/http2/streams.ts';
import type { Chunk } from './fixture.ts';

export const SELECTED = ['traceparent', 'x-correlation-id', 'content-type'];

/** A fed chunk: captured bytes and length on the wire. */
export interface CapturedChunk extends Chunk {
  total: number;
}

export function asCaptured(chunks: readonly Chunk[]): CapturedChunk[] {
  return chunks.map((c) => ({ ...c, total: c.bytes.length }));
}

export interface ReplayResult {
  records: Http2StreamRecord[];
  connection: Http2Connection;
  counters: Http2Counters;
}

export function replay(chunks: readonly CapturedChunk[], options: Partial<Http2ConnectionOptions> = {}): ReplayResult {
  const counters = newHttp2Counters();
  const connection = new Http2Connection({ start: 'preface', selectedHeaders: SELECTED, counters, ...options });
  const records: Http2StreamRecord[] = [];
  let last = 0;
  for (const c of chunks) {
    records.push(...connection.feed(c.from, c.bytes, c.t, c.total));
    last = c.t;
  }
  records.push(...connection.close(last));
  return { records, connection, counters };
}

/** Each direction cut into pieces of random sizes (1..max bytes), the directions kept in order. */
export function rechunk(chunks: readonly Chunk[], rand: () => number, max: number): CapturedChunk[] {
  const out: CapturedChunk[] = [];
  for (const c of chunks) {
    for (let at = 0; at < c.bytes.length; ) {
      const n = 1 + (rand() % max);
      const bytes = c.bytes.subarray(at, at + n);
      out.push({ from: c.from, t: c.t, bytes, total: bytes.length });
      at += n;
    }
  }
  return out;
}

/** One chunk per frame (the preface on its own), as a capture of per-frame writes would give. */
export function perFrame(chunks: readonly Chunk[], clientSkip = 0, serverSkip = 0): CapturedChunk[] {
  const out: CapturedChunk[] = [];
  const pending = { client: Buffer.alloc(0), server: Buffer.alloc(0) };
  const skip = { client: clientSkip, server: serverSkip };
  const preface = { client: true, server: false };
  for (const c of chunks) {
    let buf = Buffer.concat([pending[c.from], c.bytes]);
    const s = Math.min(skip[c.from], buf.length);
    if (s > 0) out.push({ from: c.from, t: c.t, bytes: buf.subarray(0, s), total: s });
    skip[c.from] -= s;
    buf = buf.subarray(s);
    if (skip[c.from] > 0) continue;
    if (preface[c.from] && buf.length >= 24) {
      out.push({ from: c.from, t: c.t, bytes: buf.subarray(0, 24), total: 24 });
      buf = buf.subarray(24);
      preface[c.from] = false;
    }
    while (!preface[c.from] && buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
      const n = 9 + buf.readUIntBE(0, 3);
      out.push({ from: c.from, t: c.t, bytes: buf.subarray(0, n), total: n });
      buf = buf.subarray(n);
    }
    pending[c.from] = buf;
  }
  return out;
}

/** Only the first `keep` bytes of each chunk captured (the total still known). */
export function truncate(chunks: readonly CapturedChunk[], keep: number): CapturedChunk[] {
  return chunks.map((c) => ({ ...c, bytes: c.bytes.subarray(0, Math.min(keep, c.bytes.length)) }));
}

/** The Upgrade: h2c exchange: the HTTP/1.1 request and 101 head, and the chunks after them. */
export function splitUpgrade(chunks: readonly Chunk[]): { upgrade: UpgradedRequest; rest: Chunk[] } {
  const req = chunks.find((c) => c.from === 'client')!;
  const res = chunks.find((c) => c.from === 'server')!;
  const requestEnd = req.bytes.indexOf('\r\n\r\n') + 4;
  const responseEnd = res.bytes.indexOf('\r\n\r\n') + 4;
  const head = parseRequestHead(req.bytes.subarray(0, requestEnd), new HeaderSelection([...SELECTED, 'host', 'http2-settings']))!;
  const headers = new Map([...head.headers].filter(([k]) => SELECTED.includes(k)));
  const upgrade: UpgradedRequest = {
    method: head.method,
    path: head.query === null ? head.path : `${head.path}?${head.query}`,
    authority: head.headers.get('host') ?? null,
    headers,
    contentType: head.headers.get('content-type') ?? null,
    http2Settings: head.headers.get('http2-settings') ?? null,
    requestBytes: requestEnd,
    responseBytes: responseEnd,
    startTime: req.t,
  };
  const rest = chunks
    .map((c) => (c === req ? { ...c, bytes: c.bytes.subarray(requestEnd) } : c === res ? { ...c, bytes: c.bytes.subarray(responseEnd) } : c))
    .filter((c) => c.bytes.length > 0);
  return { upgrade, rest };
}
