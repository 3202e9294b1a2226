/**
 * The recorded HTTP/2 fixtures (test/fixtures/http2/*.json, made by record-fixtures.ts) and
 * an independent reference reading of them: a plain whole-buffer frame walk, to check the
 * incremental decoder's byte counts against.
 */
import { readFileSync, readdirSync } from 'node:fs';

export interface RecordedChunk {
  from: 'client' | 'server';
  /** Microseconds since the tap started. */
  t: number;
  base64: string;
}

/** What the peers reported of one stream. */
export interface PeerStream {
  /** The HTTP/2 stream id, when the peers expose it. */
  streamId: number | null;
  /** Else the x-correlation-id the stream carried. */
  key: string | null;
  method: string | null;
  path: string | null;
  authority: string | null;
  status: number | null;
  /** DATA payload bytes each side received (null: not reported). */
  requestBodyBytes: number | null;
  responseBodyBytes: number | null;
  reset: boolean;
  /** Request headers the server saw. */
  headers: Record<string, string>;
  grpc: { status: number; message: string | null } | null;
}

export interface Http2Fixture {
  name: string;
  description: string;
  recordedWith: string;
  /** 'upgrade': the connection begins with an HTTP/1.1 Upgrade: h2c exchange. */
  start: 'preface' | 'upgrade';
  chunks: RecordedChunk[];
  streams: PeerStream[];
}

export interface Chunk {
  from: 'client' | 'server';
  t: number;
  bytes: Buffer;
}

const DIR = new URL('../fixtures/http2/', import.meta.url);

export function loadFixtures(): Map<string, { fixture: Http2Fixture; chunks: Chunk[] }> {
  const out = new Map<string, { fixture: Http2Fixture; chunks: Chunk[] }>();
  for (const file of readdirSync(DIR).filter((f) => f.endsWith('.json')).sort()) {
    const fixture = JSON.parse(readFileSync(new URL(file, DIR), 'utf8')) as Http2Fixture;
    out.set(fixture.name, { fixture, chunks: fixture.chunks.map((c) => ({ from: c.from, t: c.t, bytes: Buffer.from(c.base64, 'base64') })) });
  }
  return out;
}

export interface ReferenceStream {
  requestBytes: number;
  responseBytes: number;
  requestData: number;
  responseData: number;
  ended: boolean;
}

/**
 * Per request stream: frame bytes each side sent until the stream ended (server END_STREAM at
 * the end of its header block or on DATA, or RST_STREAM either way), read by walking each
 * direction's whole byte sequence; frames are taken in the order their last byte arrived.
 */
export function referenceWalk(chunks: readonly Chunk[], skipClientPrefix: number, skipServerPrefix: number): Map<number, ReferenceStream> {
  const streams = new Map<number, ReferenceStream>();
  const buffers = { client: Buffer.alloc(0), server: Buffer.alloc(0) };
  const skip = { client: skipClientPrefix + 24, server: skipServerPrefix };
  const endAfterHeaders = new Set<number>();
  for (const c of chunks) {
    buffers[c.from] = Buffer.concat([buffers[c.from], c.bytes]);
    let buf = buffers[c.from];
    const drop = Math.min(skip[c.from], buf.length);
    skip[c.from] -= drop;
    buf = buf.subarray(drop);
    while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
      const len = buf.readUIntBE(0, 3);
      const type = buf[3]!;
      const flags = buf[4]!;
      const id = buf.readUInt32BE(5) & 0x7fffffff;
      let s = streams.get(id);
      if (!s && c.from === 'client' && type === 1 && id % 2 === 1) streams.set(id, (s = { requestBytes: 0, responseBytes: 0, requestData: 0, responseData: 0, ended: false }));
      if (s && !s.ended) {
        const padded = type === 0 && flags & 0x8 ? 1 + buf[9]! : 0;
        if (c.from === 'client') s.requestBytes += 9 + len;
        else s.responseBytes += 9 + len;
        if (type === 0) s[c.from === 'client' ? 'requestData' : 'responseData'] += len - padded;
        if (type === 3) s.ended = true;
        if (c.from === 'server') {
          if (type === 0 && flags & 1) s.ended = true;
          if (type === 1 && flags & 1) endAfterHeaders.add(id);
          if ((type === 1 || type === 9) && flags & 4 && endAfterHeaders.has(id)) s.ended = true;
        }
      }
      buf = buf.subarray(9 + len);
    }
    buffers[c.from] = buf;
  }
  return streams;
}
