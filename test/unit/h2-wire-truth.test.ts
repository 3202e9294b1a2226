/**
 * The HTTP/2 tests' wire truth (test/harness/h2-wire.ts) on hand-built connections: a stream is
 * counted until its end, and only a suffix of the client's trailing WINDOW_UPDATEs (which a
 * slow server may read after its end) may be left out of a record's request bytes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertStreamBytes, streamBytesToEnd, type Wire } from '../harness/h2-wire.ts';
import { h2Frame } from '../http2/frame-bytes.ts';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const [DATA, HEADERS, WINDOW_UPDATE] = [0, 1, 8];
const END_STREAM = 1;

/** A connection from chunks in the order a relay passed them on. */
function wire(order: [up: boolean, ...frames: Buffer[]][]): Wire {
  const w: Wire = { up: [], down: [], order: [] };
  for (const [up, ...frames] of order) {
    const data = Buffer.concat(frames);
    (up ? w.up : w.down).push(data);
    w.order.push({ up, data });
  }
  return w;
}

const request = h2Frame(HEADERS, 4 | END_STREAM, 1, 20); // 29 bytes
const update = h2Frame(WINDOW_UPDATE, 0, 1, 4); // 13 bytes
const body = h2Frame(DATA, 0, 1, 100); // 109 bytes
const trailers = h2Frame(HEADERS, 4 | END_STREAM, 1, 10); // 19 bytes

const data = h2Frame(DATA, 0, 1, 30); // 39 bytes, a client's request body

describe('HTTP/2 wire truth', () => {
  it("the client's trailing WINDOW_UPDATEs may be left out, last first; one after the end never counts", () => {
    const w = wire([[true, PREFACE, request], [false, body], [true, update], [false, body], [true, update], [false, trailers], [true, update]]);
    const { up, down, crossing } = streamBytesToEnd(w);
    assert.equal(up.get(1), 29 + 13 + 13, 'the update after the end is no part of the stream');
    assert.equal(down.get(1), 109 + 109 + 19);
    assert.deepEqual(crossing.get(1), [13, 13]);
    assert.equal(assertStreamBytes([{ bytes_received: 55, bytes_sent: 237 }], [w]), 0);
    assert.equal(assertStreamBytes([{ bytes_received: 42, bytes_sent: 237 }], [w]), 1);
    assert.equal(assertStreamBytes([{ bytes_received: 29, bytes_sent: 237 }], [w]), 1);
    assert.throws(() => assertStreamBytes([{ bytes_received: 16, bytes_sent: 237 }], [w]), /every record matches one stream/);
  });

  it('a WINDOW_UPDATE followed by another client frame on the stream is certain: leaving it out fails', () => {
    const open = h2Frame(HEADERS, 4, 1, 20); // no END_STREAM: a body follows
    const w = wire([[true, PREFACE, open], [false, body], [true, update], [true, data], [false, trailers]]);
    assert.deepEqual(streamBytesToEnd(w).crossing.get(1), []);
    assert.throws(() => assertStreamBytes([{ bytes_received: 29 + 39, bytes_sent: 128 }], [w]), /every record matches one stream/);
    assert.equal(assertStreamBytes([{ bytes_received: 29 + 13 + 39, bytes_sent: 128 }], [w]), 0);
  });

  it('response bytes match exactly, and a missing or extra record fails', () => {
    const w = wire([[true, PREFACE, request], [false, body, trailers]]);
    assert.throws(() => assertStreamBytes([{ bytes_received: 29, bytes_sent: 127 }], [w]), /every record matches one stream/);
    assert.throws(() => assertStreamBytes([], [w]), /every record matches one stream/);
    assert.throws(() => assertStreamBytes([{ bytes_received: 29, bytes_sent: 128 }, { bytes_received: 29, bytes_sent: 128 }], [w]), /every record matches one stream/);
  });
});
