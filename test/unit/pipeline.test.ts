/**
 * RequestPipeline fed with the recorded loader stream (test/fixtures/loader-stream.bin: five
 * GETs to the Python server, one keep-alive connection with two), as test/unit/decode.test.ts
 * feeds the assembler: every request comes out once, with its numbers taken from its kernel
 * record, and with a span; whatever the chunking. No root, no loader.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { FrameReader } from '../../src/decode/frame-reader.ts';
import { RequestFlags } from '../../src/decode/layout.ts';
import { decodeRecord, type KernelRequest } from '../../src/decode/records.ts';
import { ProcessInfoCache } from '../../src/enrich/process-info.ts';
import { CorrelationExtractor } from '../../src/http/correlation.ts';
import { SpanBuilder } from '../../src/otel/span-builder.ts';
import { RequestPipeline } from '../../src/pipeline/pipeline.ts';
import { settleRecordShape } from '../../src/pipeline/request-builder.ts';
import type { RequestRecord } from '../../src/types.ts';

const fixture = readFileSync(new URL('../fixtures/loader-stream.bin', import.meta.url));

interface Replay {
  recorded: RequestRecord[];
  updated: RequestRecord[];
  kernel: KernelRequest[];
  spans: number;
  pipeline: RequestPipeline;
}

function replay(chunk: number): Replay {
  const recorded: RequestRecord[] = [];
  const updated: RequestRecord[] = [];
  const kernel: KernelRequest[] = [];
  let spans = 0;
  const pipeline = new RequestPipeline(
    { correlation: new CorrelationExtractor([]), processes: new ProcessInfoCache(), keepQuery: false, pods: null },
    new SpanBuilder(() => spans++),
    { record: (r) => recorded.push(r), updated: (r) => updated.push(r) },
  );
  const reader = new FrameReader((frame) => {
    const rec = decodeRecord(frame);
    if (rec.kind === 'request') kernel.push(rec);
    if (rec.kind === 'request' || rec.kind === 'data' || rec.kind === 'dependency') pipeline.handle(rec);
  });
  for (let i = 0; i < fixture.length; i += chunk) reader.push(fixture.subarray(i, i + chunk));
  assert.equal(reader.bufferedBytes, 0);
  return { recorded, updated, kernel, spans, pipeline };
}

/** A record without what is drawn at random per run (ids). */
const stable = ({ request_id: _r, trace_id: _t, span_id: _s, ...rest }: RequestRecord) => rest;

describe('RequestPipeline on the recorded loader stream', () => {
  it('closes every request once, with its kernel numbers, its HTTP fields and a span', () => {
    const { recorded, updated, kernel, spans, pipeline } = replay(fixture.length);
    assert.equal(kernel.length, 5);
    assert.deepEqual(recorded.map((r) => r.http_path), ['/a', '/b', '/c', '/d', '/e']);
    assert.equal(updated.length, 0);
    assert.equal(spans, 5, 'one SERVER span per request');
    recorded.forEach((r, i) => {
      const k = kernel[i]!;
      assert.equal(r.http_method, 'GET');
      assert.equal(r.http_status, 200);
      assert.equal(r.route, r.http_path);
      assert.equal(r.process_name, 'python3');
      assert.equal(r.pid, k.pid);
      assert.equal(r.local_port, 18082);
      assert.equal(r.remote_ip, '127.0.0.1');
      assert.equal(r.remote_port, k.remotePort);
      assert.equal(r.duration_ms, Number(k.endNs - k.startNs) / 1e6);
      assert.equal(r.timestamp, Number(k.startNs / 1000n) / 1e6);
      assert.equal(r.cpu_time_ms, k.cpuNs / 1e6);
      assert.equal(r.cpu_attribution, 'exact');
      assert.equal(r.bytes_received, k.bytesReceived);
      assert.equal(r.bytes_sent, k.bytesSent);
      assert.equal(r.memory_rss_bytes, k.rssBytes);
      assert.equal(r.parent_span_id, null);
      assert.deepEqual(r.dependencies, []);
      assert.match(r.trace_id, /^[0-9a-f]{32}$/);
      assert.match(r.span_id, /^[0-9a-f]{16}$/);
    });
    assert.equal(new Set(recorded.map((r) => r.request_id)).size, 5);
    // The keep-alive connection's two requests: one connection, in order.
    assert.equal(kernel[3]!.connId, kernel[4]!.connId);
    assert.deepEqual([kernel[3]!.seq, kernel[4]!.seq], [1, 2]);
    assert.deepEqual(pipeline.counters(), {
      requests: 5,
      requestsNotHttp: 0,
      dependencies: 0,
      dependenciesLate: 0,
      dependenciesOrphaned: 0,
      dataOrphaned: 0,
      restartInFlightLost: 0,
      capturesEvictedForBytes: 0,
      linksMade: 0,
      linksTimedOut: 0,
      requestsUpdated: 0,
    });
  });

  it('gives the same records whatever the chunking of the stream', () => {
    const whole = replay(fixture.length).recorded.map(stable);
    for (const chunk of [1, 7, 4096]) assert.deepEqual(replay(chunk).recorded.map(stable), whole, `chunks of ${chunk}`);
  });

  it('a record re-reported for the same connection and seq (late write) updates the stored request', () => {
    const { recorded, updated, kernel, pipeline } = replay(fixture.length);
    const last = kernel[4]!;
    const later = { ...last, flags: last.flags | RequestFlags.LATE_WRITE, endNs: last.endNs + 5_000_000n, bytesSent: last.bytesSent + 1000 };
    pipeline.handle(later);
    assert.equal(recorded.length, 5, 'no new request');
    assert.equal(updated.length, 1);
    assert.equal(updated[0], recorded[4], 'the stored record itself is updated');
    assert.equal(updated[0]!.bytes_sent, last.bytesSent + 1000);
    assert.equal(updated[0]!.duration_ms, Number(later.endNs - last.startNs) / 1e6);
    assert.equal(pipeline.counters().requestsUpdated, 1);
  });

  it('builds records with the key order of the shape settled at load (settleRecordShape)', () => {
    // A different order would be a different V8 map: the settling would do nothing.
    const { recorded } = replay(fixture.length);
    for (const seed of settleRecordShape()) assert.deepEqual(Object.keys(seed), Object.keys(recorded[0]!));
  });
});
