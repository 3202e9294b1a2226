/**
 * TraceLinker on its own: a callee's request is released at once when it cannot or need not
 * wait, linked when its caller's CLIENT span is known (before or after it), and released
 * unlinked after the timeout, whatever order the two arrive in.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import type { BuiltRequest } from '../../src/pipeline/request-builder.ts';
import { TraceLinker } from '../../src/pipeline/trace-linker.ts';
import { sampleRecord } from './sample-record.ts';

const CALLER = { traceId: 'c'.repeat(32), spanId: 'd'.repeat(16) };

function built(id: string, callerExchangeKey: string | null, traceParent = false): BuiltRequest {
  return {
    record: sampleRecord({ request_id: id, trace_id: id.padStart(32, '0'), span_id: id.padStart(16, '0') }),
    startNs: 0n,
    endNs: 1n,
    cpuNs: 0,
    localAddr: '127.0.0.1',
    seq: 1,
    http: null,
    traceParent: traceParent ? { traceId: 'e'.repeat(32), parentSpanId: 'f'.repeat(16), sampled: true } : null,
    captureIncomplete: false,
    isHttp: true,
    dependencies: [],
    pod: null,
    callerExchangeKey,
    generation: 0,
    connId: parseInt(id, 16),
  };
}

function linker(timeoutMs = 5_000): { l: TraceLinker; released: BuiltRequest[] } {
  const released: BuiltRequest[] = [];
  return { l: new TraceLinker((b) => released.push(b), timeoutMs), released };
}

describe('TraceLinker', () => {
  it('releases at once, unlinked, a request the kernel linked to no caller, or that carries a traceparent', () => {
    const { l, released } = linker();
    const alone = built('1', null);
    const propagated = built('2', '0:9:1', true);
    l.clientSpanReady('0:9:1', CALLER);
    l.offer(alone);
    l.offer(propagated);
    assert.deepEqual(released, [alone, propagated]);
    assert.equal(alone.record.parent_span_id, null);
    assert.equal(propagated.record.trace_id, '2'.padStart(32, '0'), 'a traceparent always wins');
    assert.equal(l.linksMade, 0);
  });

  it('caller first: the callee is linked and released at once', () => {
    const { l, released } = linker();
    l.clientSpanReady('0:7:3', CALLER);
    const callee = built('1', '0:7:3');
    l.offer(callee);
    assert.deepEqual(released, [callee]);
    assert.equal(callee.record.trace_id, CALLER.traceId);
    assert.equal(callee.record.parent_span_id, CALLER.spanId);
    assert.equal(l.linksMade, 1);
  });

  it('callee first: it waits for its caller and goes out linked when the caller arrives', () => {
    const { l, released } = linker();
    const callee = built('1', '0:7:3');
    const other = built('2', '0:8:1');
    l.offer(callee);
    l.offer(other);
    assert.deepEqual(released, []);
    l.clientSpanReady('0:7:4', CALLER); // another exchange on the same connection: not its caller
    assert.deepEqual(released, []);
    l.clientSpanReady('0:7:3', CALLER);
    assert.deepEqual(released, [callee]);
    assert.equal(callee.record.parent_span_id, CALLER.spanId);
    l.flush();
    assert.deepEqual(released, [callee, other], 'flush releases what still waits');
    assert.equal(other.record.parent_span_id, null);
    assert.deepEqual([l.linksMade, l.linksTimedOut], [1, 0]);
  });

  it('a caller that never comes: the callee goes out unlinked after the timeout, once', async () => {
    const { l, released } = linker(30);
    const callee = built('1', '0:7:3');
    l.offer(callee);
    await sleep(5);
    assert.deepEqual(released, [], 'still waiting within the timeout');
    await sleep(100);
    assert.deepEqual(released, [callee]);
    assert.equal(callee.record.parent_span_id, null);
    assert.equal(l.linksTimedOut, 1);
    l.clientSpanReady('0:7:3', CALLER); // too late: nothing is released twice or relinked
    l.flush();
    assert.deepEqual(released, [callee]);
    assert.equal(callee.record.parent_span_id, null);
    assert.deepEqual([l.linksMade, l.linksTimedOut], [0, 1]);
  });
});
