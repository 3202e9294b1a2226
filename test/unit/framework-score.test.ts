/**
 * The framework matrix's yardstick (test/harness/framework-score.ts) on hand-made records:
 * each mark must notice the fault it is about, or the matrix could pass a broken agent.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { calibrate, score, truthSelfWithinPct, type ScoreInput, type Sent } from '../harness/framework-score.ts';
import type { TruthLine } from '../harness/frameworks.ts';
import type { DependencyRecord, RequestRecord } from '../../src/types.ts';

const UPSTREAM_PORT = 9001;

function sent(id: string, kind: Sent['kind'], path: string): Sent {
  return { id, kind, path, res: { status: 200, headers: new Map(), body: Buffer.alloc(0), bytesSent: 100, bytesReceived: 200, latencyMs: 5 } };
}

function truth(id: string, cpuMs: number, deps?: TruthLine['deps']): TruthLine {
  return { id, pid: 42, tid: 42, cpu_ns: cpuMs * 1e6, wall_start_ns: '0', wall_end_ns: '0', parallel: false, deps };
}

function record(id: string | null, path: string, over: Partial<RequestRecord> = {}): RequestRecord {
  return {
    request_id: `r-${id}-${path}`, trace_id: `t-${id}`, span_id: `s-${id}`, parent_span_id: null, timestamp: 10, pid: 42,
    process_name: 'node', service_name: 'svc', namespace: null, pod_name: null, route: path, local_port: 8080,
    remote_ip: '127.0.0.1', remote_port: 5000, duration_ms: 5, cpu_time_ms: 1.3, cpu_attribution: 'exact', cpu_after_response_ms: 0, memory_rss_bytes: 1, bytes_received: 100,
    bytes_sent: 200, correlation_id: id, http_method: 'GET', http_path: path, http_status: 200, dependencies: [], ...over,
  };
}

function dep(path: string, newConnection: boolean, spanId: string): DependencyRecord {
  return { timestamp: 10, peer_ip: '127.0.0.1', peer_port: UPSTREAM_PORT, new_connection: newConnection, connect_ms: null, duration_ms: 1, bytes_sent: 80, bytes_received: 150, http_method: 'GET', http_path: path, http_status: 200, caller_attribution: 'exact', span_id: spanId };
}

function input(over: Partial<ScoreInput>): ScoreInput {
  return { framework: 'fw', model: 'event loop', mode: 'concurrent', sent: [], records: [], upstream: [], upstreamPort: UPSTREAM_PORT, truth: new Map(), overheads: { work: 0.3 }, window: [0, 100], scoreCpu: true, ...over };
}

describe('framework matrix score', () => {
  it('counts exact records, and a wrong pid, a duplicate or a stray record against them', () => {
    const s = [sent('a', 'work', '/work/1000'), sent('b', 'work', '/work/1000'), sent('c', 'work', '/work/1000')];
    const t = new Map([['a', truth('a', 1)], ['b', truth('b', 1)], ['c', truth('c', 1)]]);
    const records = [record('a', '/work/1000'), record('b', '/work/1000', { pid: 7 }), record('c', '/work/1000'), record('c', '/work/1000'), record(null, '/x')];
    const row = score(input({ sent: s, truth: t, records }));
    assert.equal(row.exact_records, 1);
    assert.equal(row.exact_bytes, 3);
    assert.equal(row.extra, 2, 'one duplicate and one record without a correlation id');
    assert.equal(row.missing, 0);
  });

  it('holds CPU to max(10%, 0.5 ms) of handler + overhead, and flags CPU above wall', () => {
    const s = [sent('a', 'work', '/w'), sent('b', 'work', '/w'), sent('c', 'work', '/w')];
    const t = new Map([['a', truth('a', 1)], ['b', truth('b', 10)], ['c', truth('c', 10)]]);
    // truth: 1.3, 10.3, 10.3 ms; tolerance 0.5, 1.03, 1.03 ms
    const records = [record('a', '/w', { cpu_time_ms: 1.79 }), record('b', '/w', { cpu_time_ms: 11.2, duration_ms: 12 }), record('c', '/w', { cpu_time_ms: 11.4, duration_ms: 10 })];
    const row = score(input({ sent: s, truth: t, records }));
    assert.equal(row.cpu_within_pct, 66.7);
    assert.equal(row.cpu_over_wall, 1, '11.4 ms of CPU in 10 ms is above 10 x 1.05 + 0.3');
  });

  it('requires exactly its own dependencies with exact bytes, and the upstream linked to them', () => {
    const s = [sent('a', 'fanout', '/fanout'), sent('b', 'fanout', '/fanout')];
    const deps = (id: string) => [{ path: `/dep/${id}/pooled`, new_connection: false }, { path: `/dep/${id}/new`, new_connection: true }];
    const t = new Map([['a', truth('a', 1, deps('a'))], ['b', truth('b', 1, deps('b'))]]);
    const up = (path: string, parent: string, trace: string) => record(null, path, { local_port: UPSTREAM_PORT, bytes_received: 80, bytes_sent: 150, parent_span_id: parent, trace_id: trace, timestamp: 1000 });
    // a: right. b: its pooled call swapped for a's new one (what a wrong owner looks like).
    const records = [
      record('a', '/fanout', { dependencies: [dep('/dep/a/pooled', false, 'da1'), dep('/dep/a/new', true, 'da2')] }),
      record('b', '/fanout', { dependencies: [dep('/dep/b/new', true, 'db2'), { ...dep('/dep/x/new', true, 'dx'), caller_attribution: 'inferred' }] }),
    ];
    const upstream = [up('/dep/a/pooled', 'da1', 't-a'), up('/dep/a/new', 'da2', 't-a'), up('/dep/b/pooled', 'da2', 't-a'), up('/dep/b/new', 'db2', 't-b')];
    const row = score(input({ sent: s, truth: t, records, upstream }));
    assert.equal(row.fanout_requests, 2);
    assert.equal(row.deps_exact_pct, 50);
    assert.equal(row.links_right_pct, 75);
    assert.equal(row.deps_misplaced, 1, "b lists a call it did not make");
    assert.equal(row.deps_misplaced_flagged_pct, 100, 'and the agent said its caller was inferred');
  });

  it('calibrates the overhead as the median excess over the handler clock, per kind', () => {
    const samples = [1.2, 1.3, 1.9].map((ms) => ({ kind: 'work' as const, handlerNs: 1e6, threadNs: ms * 1e6, processNs: (ms + 1) * 1e6 }));
    assert.deepEqual(calibrate(samples, 'thread'), { work: 0.3 });
    assert.deepEqual(calibrate(samples, 'process'), { work: 1.3 });
    // Predicted 1.3 ms: the 1.9 ms sample is 0.6 ms off, outside max(10%, 0.5 ms).
    assert.equal(truthSelfWithinPct(samples, 'thread', { work: 0.3 }), 66.7);
    assert.equal(truthSelfWithinPct(samples, 'thread', { work: 0.5 }), 100);
  });
});
