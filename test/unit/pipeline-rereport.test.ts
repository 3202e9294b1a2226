/**
 * A request reported twice (an idle flush racing the connection's close) keeps the request
 * bytes of its first report: for a pipelined request those were realigned by HTTP framing
 * from the record before it, and the kernel's own count for it is 0.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Direction, RequestFlags } from '../../src/decode/layout.ts';
import type { KernelData, KernelRequest } from '../../src/decode/records.ts';
import { testPipeline } from './test-pipeline.ts';

const T0 = 1_800_000_000_000_000_000n;
const HEAD_A = 'GET /a HTTP/1.1\r\nHost: x\r\n\r\n';
const HEAD_B = 'GET /b HTTP/1.1\r\nHost: x\r\n\r\n';

function kernelRequest(seq: number, flags: number, bytesReceived: number, reqCaptured: number): KernelRequest {
  return {
    kind: 'request', flags, pid: process.pid, tid: process.pid, connId: 7, cgroupId: 0,
    startNs: T0, endNs: T0 + 1_000_000n, cpuNs: 100_000,
    bytesReceived, bytesSent: 100, rssBytes: 1, seq, family: 2, localPort: 8080, remotePort: 40000,
    reqCaptured, respCaptured: 0, status: 0, localAddr: '127.0.0.1', remoteAddr: '127.0.0.1', comm: 'node', peerConnId: 0, cpuAfterResponseNs: 0,
  };
}

describe('a pipelined request reported again', () => {
  it('keeps the request bytes its first report realigned', () => {
    const { p, recorded, updated } = testPipeline();
    // One read carried both requests: the first record counts all their bytes.
    const both = Buffer.from(HEAD_A + HEAD_B, 'latin1');
    const data: KernelData = { kind: 'data', direction: Direction.REQUEST, connId: 7, seq: 1, offset: 0, bytes: both };
    p.handle(data, 1);
    p.handle(kernelRequest(1, 0, both.length, both.length), 1);
    p.handle(kernelRequest(2, RequestFlags.PIPELINED, 0, 0), 1);
    assert.deepEqual(recorded.map((r) => [r.http_path, r.bytes_received]), [['/a', HEAD_A.length], ['/b', HEAD_B.length]]);
    // The same second request again (PC_F_CONN_CLOSED after an idle flush).
    p.handle(kernelRequest(2, RequestFlags.PIPELINED | RequestFlags.CONN_CLOSED, 0, 0), 1);
    assert.equal(updated.length, 1);
    assert.equal(updated[0]!.bytes_received, HEAD_B.length);
  });
});
