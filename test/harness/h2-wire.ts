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
  /** Both directions' chunks in the order the relay passed them on. */
  order: { up: boolean; bytes: Buffer }[];
}

/** Per-stream frame bytes (9-byte headers included) of one direction; stream 0 and the preface apart. */
export function streamBytes(chunks: Buffer[], preface: boolean): { perStream: Map<number, number>; connection: number; total: number } {
  const buf = Buffer.concat(chunks);
  const perStream = new Map<number, number>();
  let at = preface ? 24 : 0;
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

/** Every client stream of the relay's connections as "request bytes/response bytes". */
export function wireStreams(wires: Wire[]): string[] {
  return wires.flatMap((w) => {
    const up = streamBytes(w.up, true);
    const down = streamBytes(w.down, false);
    return [...up.perStream.keys()].map((id) => `${up.perStream.get(id)}/${down.perStream.get(id) ?? 0}`);
  });
}

/**
 * Like wireStreams, but a stream's client frames count only until the server ended it
 * (END_STREAM, or RST_STREAM either way) as the relay passed them on: a request ends there,
 * and what the client sends on the stream afterwards (a WINDOW_UPDATE for data it had just
 * received) belongs to no request. The relay sees each direction before the server does, so
 * a client frame it passed on before the end may still reach the server after its last write.
 */
export function wireStreamsUntilEnd(wires: Wire[]): string[] {
  return wires.flatMap((w) => {
    const up = new FrameSplitter(24);
    const down = new FrameSplitter(0);
    const bytes = new Map<number, { up: number; down: number; ended: boolean }>();
    for (const { up: isUp, bytes: chunk } of w.order) {
      for (const f of (isUp ? up : down).push(chunk)) {
        if (f.stream === 0) continue;
        let s = bytes.get(f.stream);
        if (!s) bytes.set(f.stream, (s = { up: 0, down: 0, ended: false }));
        if (s.ended) continue;
        if (isUp) s.up += f.size;
        else s.down += f.size;
        const endStream = (f.type === 0 || f.type === 1) && (f.flags & 1) !== 0;
        if ((!isUp && endStream) || f.type === 3) s.ended = true;
      }
    }
    return [...bytes.values()].filter((s) => s.up > 0).map((s) => `${s.up}/${s.down}`);
  });
}

/** Splits one direction's bytes into frames as they arrive (after a preface of `skip` bytes). */
class FrameSplitter {
  #buf = Buffer.alloc(0);
  #skip: number;
  constructor(skip: number) {
    this.#skip = skip;
  }

  push(chunk: Buffer): { stream: number; type: number; flags: number; size: number }[] {
    this.#buf = Buffer.concat([this.#buf, chunk]);
    const skipped = Math.min(this.#skip, this.#buf.length);
    this.#skip -= skipped;
    this.#buf = this.#buf.subarray(skipped);
    const out = [];
    while (this.#buf.length >= 9 && this.#buf.length >= 9 + this.#buf.readUIntBE(0, 3)) {
      const size = 9 + this.#buf.readUIntBE(0, 3);
      out.push({ stream: this.#buf.readUInt32BE(5) & 0x7fff_ffff, type: this.#buf[3]!, flags: this.#buf[4]!, size });
      this.#buf = this.#buf.subarray(size);
    }
    return out;
  }
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
      wire.order.push({ up: true, bytes: wire.up.at(-1)! });
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      wire.down.push(Buffer.from(d));
      wire.order.push({ up: false, bytes: wire.down.at(-1)! });
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
