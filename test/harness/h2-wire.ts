/**
 * HTTP/2 truth from the wire, independent of the agent: a TCP relay that keeps every byte of
 * each connection both ways, and a split of those bytes into frames by their 9-byte headers
 * only (no HPACK), which gives each stream's bytes, frame headers included.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export interface Wire {
  /** Client-to-server and server-to-client bytes of one connection. */
  up: Buffer[];
  down: Buffer[];
  /** Both directions' chunks in the order the relay forwarded them. */
  order: { up: boolean; data: Buffer }[];
}

/** Per-stream frame bytes (9-byte headers included) of one direction; stream 0, the preface and `head` bytes before it (an HTTP/1.1 upgrade) apart. */
export function streamBytes(chunks: Buffer[], preface: boolean, head = 0): { perStream: Map<number, number>; connection: number; total: number } {
  const buf = Buffer.concat(chunks);
  const perStream = new Map<number, number>();
  let at = head + (preface ? 24 : 0);
  let connection = at;
  while (at + 9 <= buf.length) {
    const len = buf.readUIntBE(at, 3);
    const id = buf.readUInt32BE(at + 5) & 0x7fff_ffff;
    if (id === 0) connection += 9 + len;
    else perStream.set(id, (perStream.get(id) ?? 0) + 9 + len);
    at += 9 + len;
  }
  assert.equal(at, buf.length, 'the wire ends at a frame boundary');
  return { perStream, connection, total: buf.length };
}

/**
 * Per-stream frame bytes of one connection as a request record counts them: each direction
 * split by frame headers, both followed in the order the relay forwarded them, and a stream
 * counted until it ended (the server's END_STREAM, or a RST_STREAM either way). Frames on a
 * stream after its end (a client's WINDOW_UPDATE once the response is in) are the connection's.
 * `head`: bytes before the frames (an HTTP/1.1 upgrade's heads); the client's side starts
 * with the 24-byte preface after it.
 *
 * `crossing`: per stream, the sizes of the client's WINDOW_UPDATE frames on it that came after
 * its last other client frame, in order. The relay cannot see when the server read them: a
 * server that is slow to read (starved of CPU) may read them after it ended the stream (then
 * they are no part of the request) or before. It reads its socket in order, so what it left
 * out is a suffix of them; every other frame is certain.
 */
export function streamBytesToEnd(
  wire: Wire,
  head: { up: number; down: number } = { up: 0, down: 0 },
): { up: Map<number, number>; down: Map<number, number>; crossing: Map<number, number[]> } {
  const out = { up: new Map<number, number>(), down: new Map<number, number>(), crossing: new Map<number, number[]>() };
  const ended = new Set<number>();
  const pending = { up: Buffer.alloc(0), down: Buffer.alloc(0) };
  const skip = { up: head.up + 24, down: head.down };
  // Per stream: the client's WINDOW_UPDATEs since its last other frame.
  const trailing = new Map<number, number[]>();
  for (const { up, data } of wire.order) {
    const side = up ? 'up' : 'down';
    let buf = Buffer.concat([pending[side], data]);
    const s = Math.min(skip[side], buf.length);
    skip[side] -= s;
    buf = buf.subarray(s);
    while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
      const len = buf.readUIntBE(0, 3);
      const [type, flags] = [buf[3]!, buf[4]!];
      const id = buf.readUInt32BE(5) & 0x7fff_ffff;
      if (id !== 0 && !ended.has(id)) {
        out[side].set(id, (out[side].get(id) ?? 0) + 9 + len);
        if (up) trailing.set(id, type === 8 ? [...(trailing.get(id) ?? []), 9 + len] : []);
        if (type === 3 || (!up && (type === 0 || type === 1) && flags & 1)) {
          ended.add(id);
          if (!up) out.crossing.set(id, trailing.get(id) ?? []);
        }
      }
      buf = buf.subarray(9 + len);
    }
    pending[side] = Buffer.from(buf);
  }
  assert.equal(pending.up.length + pending.down.length, 0, 'the wire ends at frame boundaries');
  return out;
}

/**
 * Every client stream of the relay's connections as "request bytes/response bytes", each
 * stream's frames counted only until it ended (streamBytesToEnd): a request ends there, and
 * what the client sends on the stream afterwards (a WINDOW_UPDATE for data it had just
 * received) belongs to no request.
 */
export function wireStreamsUntilEnd(wires: Wire[]): string[] {
  return wireStreams(wires).map((t) => `${t.up}/${t.down}`);
}

function wireStreams(wires: Wire[]): { id: number; up: number; down: number; crossing: number[] }[] {
  return wires.flatMap((w) => {
    const { up, down, crossing } = streamBytesToEnd(w);
    return [...up.keys()].map((id) => ({ id, up: up.get(id)!, down: down.get(id) ?? 0, crossing: crossing.get(id) ?? [] }));
  });
}

/**
 * Records' "request/response" bytes against the wire's streams, as a multiset (the wire does
 * not say which call a stream was): response bytes exactly, request bytes exactly but for a
 * suffix of the client's trailing WINDOW_UPDATEs (streamBytesToEnd), which the server may have
 * read after its end. Returns how many streams left some out.
 */
export function assertStreamBytes(
  records: { bytes_received: number; bytes_sent: number }[],
  wires: Wire[],
  /** Only these streams (of a single connection) must each match a record; other records are let be. */
  only?: ReadonlySet<number>,
): number {
  const streams = wireStreams(wires).filter((t) => !only || only.has(t.id));
  const unmatched: string[] = [];
  let crossedAfter = 0;
  const remaining = [...streams];
  // Exact matches first, so a tolerant match never takes a stream another record matches exactly.
  const rest = records.filter((r) => {
    const i = remaining.findIndex((t) => t.up === r.bytes_received && t.down === r.bytes_sent);
    if (i < 0) return true;
    remaining.splice(i, 1);
    return false;
  });
  for (const r of rest) {
    const i = remaining.findIndex((t) => t.down === r.bytes_sent && suffixSums(t.crossing).has(t.up - r.bytes_received));
    if (i < 0) {
      if (!only) unmatched.push(`${r.bytes_received}/${r.bytes_sent}`);
      continue;
    }
    crossedAfter++;
    remaining.splice(i, 1);
  }
  assert.deepEqual(
    { records: unmatched.sort(), streams: remaining.map((t) => `${t.up}/${t.down}${t.crossing.length ? ` (${t.crossing.length} crossing WINDOW_UPDATE)` : ''}`).sort() },
    { records: [], streams: [] },
    'every record matches one stream on the wire',
  );
  return crossedAfter;
}

/** 0, the last, the last two, ... summed. */
function suffixSums(sizes: number[]): Set<number> {
  const sums = new Set([0]);
  let sum = 0;
  for (let i = sizes.length - 1; i >= 0; i--) sums.add((sum += sizes[i]!));
  return sums;
}

export interface Relay {
  port: number;
  wires: Wire[];
  close(): void;
}

/** A TCP relay that keeps every byte both ways. */
export async function startRecordingRelay(target: number): Promise<Relay> {
  const wires: Wire[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const wire: Wire = { up: [], down: [], order: [] };
    wires.push(wire);
    const upstream = connect(target, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.on('data', (d: Buffer) => {
      wire.up.push(Buffer.from(d));
      wire.order.push({ up: true, data: wire.up.at(-1)! });
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      wire.down.push(Buffer.from(d));
      wire.order.push({ up: false, data: wire.down.at(-1)! });
      client.write(d);
    });
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    wires,
    close: () => {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}
