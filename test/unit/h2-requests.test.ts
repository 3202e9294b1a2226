/**
 * src/pipeline/h2-requests.ts on recorded HTTP/2 connections (test/fixtures/http2/), fed as the
 * kernel sends them (bpf/h2.bpf.h): per syscall, runs of captured bytes (every frame header,
 * every payload but DATA's) and skipped ones (DATA payloads), cut into records of at most
 * PC_H2_DATA_MAX captured bytes and PC_H2_RUNS_MAX runs. One record per stream with the peers'
 * method, path and status; the CPU given with the syscalls is conserved.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Direction, H2Flags, PC_H2_DATA_MAX, PC_H2_PAYLOAD_MAX, PC_H2_RUNS_MAX, RequestFlags } from '../../src/decode/layout.ts';
import type { H2Run, KernelH2Conn, KernelH2Io } from '../../src/decode/records.ts';
import { ProcessInfoCache } from '../../src/enrich/process-info.ts';
import { CorrelationExtractor } from '../../src/http/correlation.ts';
import { H2Requests } from '../../src/pipeline/h2-requests.ts';
import type { BuiltRequest } from '../../src/pipeline/request-builder.ts';
import { loadFixtures, type Chunk } from '../http2/fixture.ts';

const FIXTURES = loadFixtures();
const CONN = 77;
const BASE = 1_700_000_000_000_000_000n;

/** The kernel's walk of one direction, in TypeScript: the same rules as h2.bpf.h. */
class Walker {
  left: number;
  keep: number;
  hdr: number[] = [];
  constructor(preface: boolean) {
    this.left = preface ? 24 : 0;
    this.keep = this.left;
  }

  /** Runs for one syscall's bytes, cut into records as the kernel cuts them. */
  records(bytes: Buffer): H2Run[][] {
    const out: H2Run[][] = [[]];
    let data = 0;
    const add = (captured: Buffer | null, skipped: number) => {
      let recs = out[out.length - 1]!;
      const last = recs[recs.length - 1];
      if (captured) {
        const full = data + captured.length > PC_H2_DATA_MAX || (recs.length >= PC_H2_RUNS_MAX && (last!.skipped > 0));
        if (full) {
          out.push((recs = []));
          data = 0;
        }
        const l = recs[recs.length - 1];
        if (l && l.skipped === 0) l.bytes = Buffer.concat([l.bytes, captured]);
        else recs.push({ bytes: captured, skipped: 0 });
        data += captured.length;
      } else {
        if (recs.length === 0) recs.push({ bytes: Buffer.alloc(0), skipped: 0 });
        recs[recs.length - 1]!.skipped += skipped;
      }
    };
    let at = 0;
    while (at < bytes.length) {
      const avail = bytes.length - at;
      if (this.left) {
        if (!this.keep) {
          const n = Math.min(this.left, avail);
          add(null, n);
          this.left -= n;
          at += n;
        } else {
          const n = Math.min(this.keep, avail, PC_H2_DATA_MAX - (data % PC_H2_DATA_MAX));
          add(bytes.subarray(at, at + n), 0);
          this.keep -= n;
          this.left -= n;
          at += n;
        }
        continue;
      }
      const n = Math.min(9 - this.hdr.length, avail);
      add(bytes.subarray(at, at + n), 0);
      this.hdr.push(...bytes.subarray(at, at + n));
      at += n;
      if (this.hdr.length < 9) continue;
      const len = (this.hdr[0]! << 16) | (this.hdr[1]! << 8) | this.hdr[2]!;
      this.left = len;
      this.keep = this.hdr[3] === 0 ? 0 : Math.min(len, PC_H2_PAYLOAD_MAX);
      this.hdr = [];
    }
    return out;
  }
}

function conn(flags = 0): KernelH2Conn {
  return {
    kind: 'h2_conn', flags, pid: process.pid, tid: process.pid, connId: CONN, cgroupId: 0, startNs: BASE, endNs: BASE, cpuNs: 0,
    bytesReceived: 0, bytesSent: 0, rssBytes: 0, seq: 0, family: 2, localPort: 50051, remotePort: 40000, reqCaptured: 0, respCaptured: 0, status: 0,
    localAddr: '127.0.0.1', remoteAddr: '127.0.0.1', comm: 'node', peerConnId: 0, cpuAfterResponseNs: 0,
  };
}

function newH2Requests(idleTimeoutNs?: bigint): H2Requests {
  return new H2Requests({ correlation: new CorrelationExtractor([]), processes: new ProcessInfoCache(), keepQuery: true, pods: null }, 0, undefined, undefined, idleTimeoutNs);
}

/** Feeds a fixture's chunks as pc_h2_io records, each syscall with `cpu(i)` ns. */
function replay(chunks: readonly Chunk[], cpu: (i: number) => number, opts: { midway?: boolean; h2?: H2Requests; noClose?: boolean } = {}) {
  const h2 = opts.h2 ?? newH2Requests();
  const out: BuiltRequest[] = [...h2.open(conn(opts.midway ? RequestFlags.H2_MIDWAY : 0)).requests];
  const walkers = { client: new Walker(!opts.midway), server: new Walker(false) };
  let given = 0;
  chunks.forEach((c, i) => {
    const parts = walkers[c.from].records(c.bytes);
    parts.forEach((runs, part) => {
      const rec: KernelH2Io = {
        kind: 'h2_io', direction: c.from === 'client' ? Direction.REQUEST : Direction.RESPONSE,
        flags: part < parts.length - 1 ? H2Flags.MORE : 0, pid: process.pid, tid: process.pid, connId: CONN,
        tsNs: BASE + BigInt(c.t) * 1000n, cpuNs: part === 0 ? cpu(i) : 0, total: part === 0 ? c.bytes.length : 0, part, runs,
      };
      given += rec.cpuNs;
      out.push(...h2.io(rec).requests);
    });
  });
  const closed: KernelH2Io = { kind: 'h2_io', direction: 0, flags: H2Flags.CLOSED, pid: 0, tid: 0, connId: CONN, tsNs: BASE + 10n ** 12n, cpuNs: 0, total: 0, part: 0, runs: [] };
  if (!opts.noClose) out.push(...h2.io(closed).requests);
  return { out, given, counters: h2.counters };
}

describe('HTTP/2 records from kernel-shaped pc_h2_io records', () => {
  for (const name of ['multiplexed', 'grpc', 'basic', 'dynamic-table', 'continuation', 'reset']) {
    it(`${name}: one record per stream, the peers' method, path, status; CPU conserved`, () => {
      const { fixture, chunks } = FIXTURES.get(name)!;
      const { out, given, counters } = replay(chunks, (i) => 1000 + i);
      assert.equal(out.length, fixture.streams.length);
      for (const peer of fixture.streams) {
        const r = out.find((b) => (peer.streamId !== null ? b.h2!.streamId === peer.streamId : b.record.correlation_id === peer.key));
        assert.ok(r, `stream ${peer.streamId ?? peer.key}`);
        // A header block past the kernel's 4096-byte capture (continuation's large block) leaves
        // the table unknown; the next reference into it stops decoding: then a field is null,
        // never another stream's. Before that, and on every other fixture, all are exact.
        const stopped = counters.hpackDesyncs > 0 && r.record.http_method === null;
        if (!stopped) {
          assert.equal(r.record.http_method, peer.method);
          assert.equal(r.record.http_path, peer.path);
        }
        if (!stopped || r.record.http_status !== null) assert.equal(r.record.http_status, peer.status);
        assert.equal(r.record.protocol, 'h2');
        if (peer.grpc) assert.equal(r.record.grpc_status, peer.grpc.status);
        else assert.equal(r.record.grpc_status, null);
      }
      if (name === 'continuation') {
        assert.ok(counters.truncatedHeaderBlocks >= 1 && counters.hpackDesyncs === 1, `the large block was cut, and decoding stopped once: ${JSON.stringify(counters)}`);
        assert.ok(out.some((b) => b.record.http_method === null) && out.some((b) => b.record.http_method !== null));
      } else {
        assert.equal(counters.hpackDesyncs, 0);
      }
      const charged = out.reduce((s, b) => s + b.cpuNs, 0);
      assert.equal(charged + counters.cpuUnattributedNs, given, 'streams + unattributed = every syscall');
      assert.equal(counters.cpuNs, given);
    });
  }

  it('multiplexed: a write carrying one stream\'s frames charges it exactly; several apportion', () => {
    const { chunks } = FIXTURES.get('multiplexed')!;
    const { out } = replay(chunks, () => 1000);
    const kinds = new Set(out.map((b) => b.record.cpu_attribution));
    assert.ok(kinds.has('apportioned') || kinds.has('exact'));
    for (const b of out) if (b.record.cpu_attribution === 'unknown') assert.equal(b.cpuNs, 0);
  });

  it('mid-way (the first chunks missed): streams counted, no field that was not decoded', () => {
    const { fixture, chunks } = FIXTURES.get('dynamic-table')!;
    // Join after the client's first request and the server's first answer.
    const firstServer = chunks.findIndex((c) => c.from === 'server' && c.bytes.length > 9 + 6);
    const from = chunks.findIndex((c, i) => i > firstServer && c.from === 'client');
    const { out, counters } = replay(chunks.slice(from), () => 0, { midway: true });
    const paths = new Set(fixture.streams.map((s) => s.path));
    for (const b of out) {
      if (b.record.http_path !== null) assert.ok(paths.has(b.record.http_path), `path ${b.record.http_path} was sent`);
    }
    assert.ok(out.length >= 1);
    console.log(`# mid-way: ${out.length} of ${fixture.streams.length} streams, ${out.filter((b) => b.record.http_path === null).length} without a path; hpack desyncs ${counters.hpackDesyncs}`);
  });

  it('a connection whose close never comes: its open streams end after the idle timeout, counted, never complete', () => {
    const { fixture, chunks } = FIXTURES.get('multiplexed')!;
    const timeout = 5_000_000_000n;
    const h2 = newH2Requests(timeout);
    // The requests and half of the server's frames: some streams finished, the rest still open.
    const serverChunks = chunks.filter((c) => c.from === 'server').length;
    let seen = 0;
    const fed = chunks.filter((c) => c.from === 'client' || seen++ < serverChunks / 2);
    const { out } = replay(fed, () => 0, { h2, noClose: true });
    const open = h2.openStreams();
    assert.ok(open > 0 && out.length > 0, `${out.length} finished, ${open} open`);
    const last = BASE + BigInt(Math.max(...fed.map((c) => c.t))) * 1000n;
    assert.deepEqual(h2.expireIdle(last + timeout - 1n).requests, [], 'not idle long enough');
    assert.equal(h2.openConnections, 1);
    const expired = h2.expireIdle(last + timeout).requests;
    assert.equal(expired.length, open);
    assert.equal(out.length + expired.length, fixture.streams.length, 'every stream a record, once');
    for (const b of expired) {
      assert.equal(b.h2!.end, 'idle-timeout');
      assert.equal(b.captureIncomplete, true);
      assert.ok(b.endNs <= last, 'ends at its connection\'s last activity, not at the sweep');
    }
    assert.equal(h2.counters.streamsIdleExpired, open);
    assert.equal(h2.counters.connectionsIdleExpired, 1);
    assert.equal(h2.openConnections, 0);
  });

  it('the idle sweep runs as records of other connections arrive (kernel time)', () => {
    const timeout = 5_000_000_000n;
    const h2 = newH2Requests(timeout);
    const { chunks } = FIXTURES.get('basic')!;
    replay(chunks.filter((c) => c.from === 'client'), () => 0, { h2, noClose: true });
    assert.ok(h2.openStreams() > 0);
    const other: KernelH2Io = {
      kind: 'h2_io', direction: Direction.REQUEST, flags: 0, pid: process.pid, tid: process.pid, connId: CONN + 1,
      tsNs: BASE + 60_000_000_000n, cpuNs: 0, total: 0, part: 0, runs: [],
    };
    const out = h2.io(other).requests;
    assert.ok(out.length > 0 && out.every((b) => b.h2!.end === 'idle-timeout'));
    assert.equal(h2.openConnections, 1, 'only the new connection is left');
  });
});
