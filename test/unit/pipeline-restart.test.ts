/**
 * Issue 13, finding 1 (agent side): a restarted loader numbers its connections from 1 again.
 * Records of a new generation must never be taken for, or alter, an earlier generation's;
 * what the dead loader had under way is counted lost; kernel counters keep accumulating.
 * The assembler's captures are bounded by bytes (finding 8).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RequestAssembler } from '../../src/assemble/request-assembler.ts';
import { Direction } from '../../src/decode/layout.ts';
import type { KernelData, KernelRequest } from '../../src/decode/records.ts';
import { CounterTotals } from '../../src/loader/counter-totals.ts';
import { testPipeline } from './test-pipeline.ts';

const T0 = 1_800_000_000_000_000_000n;

function request(connId: number, seq: number, path: string, durationMs: number): { data: KernelData; request: KernelRequest } {
  const head = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`, 'latin1');
  return {
    data: { kind: 'data', direction: Direction.REQUEST, connId, seq, offset: 0, bytes: head },
    request: {
      kind: 'request', flags: 0, pid: process.pid, tid: process.pid, connId, cgroupId: 0,
      startNs: T0, endNs: T0 + BigInt(durationMs * 1e6), cpuNs: durationMs * 1e5,
      bytesReceived: head.length, bytesSent: 100, rssBytes: 1, seq, family: 2, localPort: 8080, remotePort: 40000,
      reqCaptured: head.length, respCaptured: 0, status: 0, localAddr: '127.0.0.1', remoteAddr: '127.0.0.1', comm: 'node', peerConnId: 0, cpuAfterResponseNs: 0,
    },
  };
}

const pipeline = testPipeline;

describe('loader restarts in the pipeline', () => {
  it('the same connection id and seq from a new loader is a new request, and the old record is untouched', () => {
    const { p, recorded, updated } = pipeline();
    const first = request(1, 1, '/before', 5);
    p.handle(first.data, 1);
    p.handle(first.request, 1);
    assert.equal(recorded.length, 1);
    const before = structuredClone(recorded[0]!);

    const second = request(1, 1, '/after', 50);
    p.handle(second.data, 2);
    p.handle(second.request, 2);
    assert.equal(recorded.length, 2, 'the new request is recorded');
    assert.equal(updated.length, 0, 'nothing was updated');
    assert.deepEqual(recorded[0], before, 'the old record is unaltered');
    assert.equal(recorded[1]!.http_path, '/after');
    assert.equal(recorded[1]!.duration_ms, 50);
  });

  it('captures under way when the loader died are counted lost; a dead loader\'s late records too', () => {
    const { p, recorded } = pipeline();
    for (let conn = 1; conn <= 3; conn++) p.handle(request(conn, 1, `/slow/${conn}`, 1).data, 1);
    const next = request(7, 1, '/new', 1);
    p.handle(next.data, 2);
    assert.equal(p.counters().restartInFlightLost, 3);
    // A record still in the old loader's pipe arrives after the new one started.
    p.handle(request(1, 1, '/slow/1', 1).request, 1);
    assert.equal(p.counters().restartInFlightLost, 4);
    p.handle(next.request, 2);
    assert.deepEqual(recorded.map((r) => r.http_path), ['/new']);
  });

  it('the same request re-reported within one loader still updates it (idle flush)', () => {
    const { p, recorded, updated } = pipeline();
    const r = request(1, 1, '/x', 5);
    p.handle(r.data, 1);
    p.handle(r.request, 1);
    p.handle({ ...r.request, endNs: T0 + 9_000_000n }, 1);
    assert.equal(recorded.length, 1);
    assert.equal(updated.length, 1);
    assert.equal(recorded[0]!.duration_ms, 9);
  });

  it('a re-report fills in the HTTP fields its first report lacked, as a first report would have them', () => {
    const r = request(1, 1, '/orders/123?card=4111', 5);
    const response: KernelData = { kind: 'data', direction: Direction.RESPONSE, connId: 1, seq: 1, offset: 0, bytes: Buffer.from('HTTP/1.1 201 Created\r\n\r\n', 'latin1') };
    const final = { ...r.request, endNs: T0 + 9_000_000n, cpuNs: 2_000_000, bytesSent: 300 };
    const { p, recorded, updated } = pipeline();
    p.handle({ ...r.request, rssBytes: 7, cpuNs: 0 }, 1); // reported before any bytes (or CPU) were captured
    assert.equal(recorded[0]!.http_method, null);
    assert.equal(recorded[0]!.cpu_attribution, 'unknown');
    p.handle(r.data, 1);
    p.handle(response, 1);
    p.handle({ ...final, rssBytes: 0 }, 1);
    assert.equal(updated.length, 1);

    const whole = pipeline();
    for (const rec of [r.data, response, final]) whole.p.handle(rec, 1);
    const fields = ['http_method', 'http_path', 'route', 'http_status', 'duration_ms', 'cpu_time_ms', 'cpu_attribution', 'bytes_sent', 'bytes_received'] as const;
    for (const f of fields) assert.equal(updated[0]![f], whole.recorded[0]![f], f);
    assert.deepEqual([updated[0]!.http_method, updated[0]!.http_path, updated[0]!.http_status], ['GET', '/orders/123?REDACTED', 201]);
    assert.equal(updated[0]!.memory_rss_bytes, 7, 'a re-report without RSS keeps the earlier reading');
  });
});

describe('CounterTotals', () => {
  it('adds each finished generation to the current one, ignores an older one', () => {
    const t = new CounterTotals();
    t.update(1, { rb_drop_request: 5, capture_shed: 1 });
    t.update(1, { rb_drop_request: 7, capture_shed: 2 });
    t.update(2, { rb_drop_request: 1 });
    assert.deepEqual(t.totals(), { rb_drop_request: 8, capture_shed: 2 });
    t.update(1, { rb_drop_request: 100 });
    t.update(3, { rb_drop_request: 4, capture_shed: 1 });
    assert.deepEqual(t.totals(), { rb_drop_request: 12, capture_shed: 3 });
  });
});

describe('assembler byte bound', () => {
  it('slow incomplete requests cannot hold more than the byte bound; evictions are counted', () => {
    const a = new RequestAssembler(1, 64 * 1024);
    const chunk = Buffer.alloc(4096, 0x41);
    for (let conn = 1; conn <= 100; conn++) {
      a.addData({ kind: 'data', direction: Direction.REQUEST, connId: conn, seq: 1, offset: 0, bytes: chunk });
      assert.ok(a.heldBytes <= 64 * 1024, `held ${a.heldBytes}`);
    }
    assert.equal(a.capturesEvictedForBytes, 100 - 16);
    assert.equal(a.orphanedChunks, 100 - 16);
    assert.equal(a.inFlight().records, 16);
  });

  it('a capture held past its stdout chunk does not share memory with that chunk', () => {
    const a = new RequestAssembler(1);
    const stdoutChunk = Buffer.alloc(65536, 0x42);
    a.addData({ kind: 'data', direction: Direction.REQUEST, connId: 1, seq: 1, offset: 0, bytes: stdoutChunk.subarray(100, 140) });
    a.detach(); // the chunk is handled (LoaderHandlers.onChunkHandled); the stream may reuse it
    stdoutChunk.fill(0);
    const done = a.completeRequest({ ...request(1, 1, '/', 1).request, reqCaptured: 40 });
    assert.equal(done.requestHead.length, 40);
    assert.equal(done.requestHead.buffer.byteLength < 65536, true);
    assert.ok(done.requestHead.every((b) => b === 0x42));
  });

  it('captures pending at a chunk end share one copy, each keeps its own bytes, also across chunks', () => {
    const a = new RequestAssembler(1);
    const data = (connId: number, bytes: Buffer, offset = 0, direction: number = Direction.REQUEST): KernelData =>
      ({ kind: 'data', direction, connId, seq: 1, offset, bytes }) as KernelData;
    const first = Buffer.alloc(65536);
    for (let conn = 1; conn <= 3; conn++) first.fill(0x40 + conn, conn * 100, conn * 100 + 30);
    for (let conn = 1; conn <= 3; conn++) a.addData(data(conn, first.subarray(conn * 100, conn * 100 + 30)));
    a.addData(data(2, first.subarray(500, 510).fill(0x61), 0, Direction.RESPONSE));
    a.detach();
    first.fill(0);
    // Connection 3's request goes on in the next chunk, which ends with it still pending.
    const second = Buffer.alloc(65536, 0x7a);
    a.addData(data(3, second.subarray(0, 20), 30));
    a.detach();
    second.fill(0);
    const done = (conn: number, req: number, resp = 0) => a.completeRequest({ ...request(conn, 1, '/', 1).request, reqCaptured: req, respCaptured: resp });
    const one = done(1, 30);
    assert.deepEqual([...one.requestHead], Array(30).fill(0x41));
    assert.ok(one.requestHead.buffer !== first.buffer && one.requestHead.buffer.byteLength < 65536);
    const two = done(2, 30, 10);
    assert.deepEqual([...two.requestHead], Array(30).fill(0x42));
    assert.deepEqual([...two.responseHead], Array(10).fill(0x61));
    const three = done(3, 50);
    assert.deepEqual([...three.requestHead], [...Array(30).fill(0x43), ...Array(20).fill(0x7a)]);
    assert.equal(three.captureIncomplete, false);
    assert.equal(a.slabHeldBytes, 0, 'no slab is held once every capture ended');
  });

  it('slow captures cannot pin more than the slack of bytes of captures that ended', () => {
    const a = new RequestAssembler(1);
    const chunk = Buffer.alloc(65536, 0x55);
    for (let i = 0; i < 100; i++) {
      // Each chunk: one request that stays pending, and 50 of 4 KB that end right after it.
      a.addData({ kind: 'data', direction: Direction.REQUEST, connId: 1_000_000 + i, seq: 1, offset: 0, bytes: chunk.subarray(0, 100) });
      for (let j = 0; j < 50; j++) a.addData({ kind: 'data', direction: Direction.REQUEST, connId: i * 100 + j, seq: 1, offset: 0, bytes: chunk.subarray(0, 4096) });
      a.detach();
      // At a chunk's end, at most the slack is held for captures that ended.
      assert.ok(a.slabHeldBytes <= a.heldBytes + 4 * 1024 * 1024, `chunk ${i}: ${a.slabHeldBytes} slab bytes for ${a.heldBytes} pending`);
      for (let j = 0; j < 50; j++) a.completeRequest({ ...request(i * 100 + j, 1, '/', 1).request, reqCaptured: 4096 });
      // Until the next chunk's end, what ended since adds to it.
      assert.ok(a.slabHeldBytes <= a.heldBytes + 4 * 1024 * 1024 + 50 * 4096, `chunk ${i}: ${a.slabHeldBytes} slab bytes for ${a.heldBytes} pending`);
    }
    assert.ok(a.slabHeldBytes < 5 * 1024 * 1024);
    chunk.fill(0);
    for (let i = 0; i < 100; i++) {
      const slow = a.completeRequest({ ...request(1_000_000 + i, 1, '/', 1).request, reqCaptured: 100 });
      assert.ok(slow.requestHead.length === 100 && slow.requestHead.every((b) => b === 0x55), `slow request ${i} kept its bytes`);
    }
    assert.equal(a.slabHeldBytes, 0);
  });
});
