/**
 * Decoder and request assembly, fed with a recorded loader stream
 * (test/fixtures/loader-stream.bin: real frames from a real run, see test/fixtures/README.md)
 * and with hand-built frames for the malformed cases.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { RequestAssembler } from '../../src/assemble/request-assembler.ts';
import { FrameError, FrameReader } from '../../src/decode/frame-reader.ts';
import { DATA, RecordType, REQUEST } from '../../src/decode/layout.ts';
import { decodeRecord, formatAddress, RecordDecodeError, type DecodedRecord } from '../../src/decode/records.ts';
import { parseRequestHead } from '../../src/http/parse.ts';

const fixture = readFileSync(new URL('../fixtures/loader-stream.bin', import.meta.url));

function decodeAll(stream: Buffer, chunk: number): DecodedRecord[] {
  const out: DecodedRecord[] = [];
  const reader = new FrameReader((f) => out.push(decodeRecord(f)));
  for (let i = 0; i < stream.length; i += chunk) reader.push(stream.subarray(i, i + chunk));
  assert.equal(reader.bufferedBytes, 0);
  return out;
}

describe('recorded loader stream', () => {
  it('decodes the same records whatever the chunking', () => {
    const whole = decodeAll(fixture, fixture.length);
    for (const chunk of [1, 7, 4096]) assert.deepEqual(decodeAll(fixture, chunk), whole);
    const kinds = new Set(whole.map((r) => r.kind));
    for (const k of ['loader_info', 'request', 'data', 'stats']) assert.ok(kinds.has(k as never), k);
  });

  it('assembles each request with its captured head', () => {
    const asm = new RequestAssembler();
    let requests = 0;
    for (const r of decodeAll(fixture, 512)) {
      if (r.kind === 'data') asm.addData(r);
      if (r.kind === 'request') {
        const a = asm.completeRequest(r);
        requests++;
        assert.equal(a.captureIncomplete, false);
        assert.equal(a.requestHead.length, r.reqCaptured);
        const head = parseRequestHead(a.requestHead);
        assert.ok(head, 'recorded requests are HTTP');
        assert.equal(head.method, 'GET');
        assert.ok(r.endNs >= r.startNs);
        assert.ok(r.startNs > 1_700_000_000_000_000_000n, 'epoch ns');
        assert.equal(r.remoteAddr, '127.0.0.1');
        assert.ok(Number.isSafeInteger(r.connId) && r.connId > 0, `conn_id ${r.connId} is held exactly as a number`);
      }
    }
    assert.ok(requests >= 3);
    assert.equal(asm.orphanedChunks, 0);
  });
});

describe('64-bit times', () => {
  it('reads them from a record anywhere in its chunk, to the nanosecond', () => {
    // Frames are views into the loader's stdout chunks, at any offset: the two records here
    // sit at odd offsets of one chunk, each with times past 2^53.
    const chunk = Buffer.alloc(3 + 2 * REQUEST.size);
    const times = [
      [1_764_000_000_123_456_789n, 1_764_000_000_987_654_321n],
      [0xfedc_ba98_7654_3210n, 0xfedc_ba98_7654_3211n],
    ] as const;
    const frames = times.map(([start, end], i) => {
      const f = chunk.subarray(3 + i * REQUEST.size, 3 + (i + 1) * REQUEST.size);
      f.writeUInt32LE(RecordType.REQUEST, 0);
      f.writeBigUInt64LE(start, REQUEST.start_ns);
      f.writeBigUInt64LE(end, REQUEST.end_ns);
      return f;
    });
    frames.forEach((f, i) => {
      const r = decodeRecord(f);
      assert.equal(r.kind, 'request');
      if (r.kind !== 'request') return;
      assert.equal(r.startNs, times[i]![0]);
      assert.equal(r.endNs, times[i]![1]);
    });
  });
});

describe('malformed input', () => {
  it('rejects short and unknown records with a decode error', () => {
    assert.throws(() => decodeRecord(Buffer.alloc(2)), RecordDecodeError);
    const unknown = Buffer.alloc(8);
    unknown.writeUInt32LE(99, 0);
    assert.throws(() => decodeRecord(unknown), RecordDecodeError);
    const shortReq = Buffer.alloc(REQUEST.size - 1);
    shortReq.writeUInt32LE(RecordType.REQUEST, 0);
    assert.throws(() => decodeRecord(shortReq), RecordDecodeError);
    const lyingData = Buffer.alloc(DATA.data + 4);
    lyingData.writeUInt32LE(RecordType.DATA, 0);
    lyingData.writeUInt16LE(100, DATA.len);
    assert.throws(() => decodeRecord(lyingData), RecordDecodeError);
  });

  it('refuses an absurd frame length instead of buffering forever', () => {
    const reader = new FrameReader(() => {});
    const bad = Buffer.alloc(8);
    bad.writeUInt32LE(0xffffffff, 0);
    assert.throws(() => reader.push(bad), FrameError);
  });

  it('counts chunks whose request record never came', () => {
    const asm = new RequestAssembler();
    asm.addData({ kind: 'data', direction: 1, connId: 5, seq: 1, offset: 0, bytes: Buffer.from('GET / HTTP/1.1\r\n\r\n') });
    asm.addData({ kind: 'data', direction: 1, connId: 5, seq: 2, offset: 0, bytes: Buffer.from('GET /2 HTTP/1.1\r\n\r\n') });
    assert.equal(asm.orphanedChunks, 1);
  });
});

describe('formatAddress', () => {
  it('formats IPv4, IPv4-mapped and IPv6', () => {
    const v4 = Buffer.from([10, 1, 2, 3, ...Array(12).fill(0)]);
    assert.equal(formatAddress(v4, 0, 2), '10.1.2.3');
    const mapped = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 9]);
    assert.equal(formatAddress(mapped, 0, 10), '192.168.1.9');
    const loop6 = Buffer.alloc(16);
    loop6[15] = 1;
    assert.equal(formatAddress(loop6, 0, 10), '::1');
    const full = Buffer.from('20010db8000000000001000000000002', 'hex');
    assert.equal(formatAddress(full, 0, 10), '2001:db8::1:0:0:2');
  });
});
