/**
 * A minimal protobuf reader for a Prometheus remote-write `WriteRequest`, written from the
 * spec independently of src/util/protobuf-writer.ts, so that the tests check the wire format
 * itself: it fails on any field or wire type the message does not have.
 */
import assert from 'node:assert/strict';

export interface DecodedSeries {
  labels: [string, string][];
  samples: { value: number; timestamp: number }[];
}

export function decodeWriteRequest(buf: Uint8Array): DecodedSeries[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const readFields = (start: number, end: number, on: (field: number, wire: number, at: number, len: number) => void) => {
    let pos = start;
    const varint = () => {
      let n = 0n;
      let shift = 0n;
      for (;;) {
        const b = buf[pos++]!;
        n |= BigInt(b & 0x7f) << shift;
        if (b < 0x80) return n;
        shift += 7n;
      }
    };
    while (pos < end) {
      const key = Number(varint());
      const field = key >> 3;
      const wire = key & 7;
      if (wire === 2) {
        const len = Number(varint());
        on(field, wire, pos, len);
        pos += len;
      } else if (wire === 1) {
        on(field, wire, pos, 8);
        pos += 8;
      } else if (wire === 0) {
        const at = pos;
        const v = varint();
        on(field, wire, at, Number(BigInt.asIntN(64, v)));
      } else throw new Error(`unexpected wire type ${wire}`);
    }
    assert.equal(pos, end);
  };
  const text = (at: number, len: number) => new TextDecoder().decode(buf.subarray(at, at + len));
  const out: DecodedSeries[] = [];
  readFields(0, buf.length, (f, w, at, len) => {
    assert.deepEqual([f, w], [1, 2], 'WriteRequest has only timeseries');
    const ts: DecodedSeries = { labels: [], samples: [] };
    readFields(at, at + len, (f2, w2, at2, len2) => {
      assert.equal(w2, 2);
      if (f2 === 1) {
        const label: [string, string] = ['', ''];
        readFields(at2, at2 + len2, (f3, _w3, at3, len3) => (label[f3 - 1] = text(at3, len3)));
        ts.labels.push(label);
      } else if (f2 === 2) {
        const sample = { value: NaN, timestamp: NaN };
        readFields(at2, at2 + len2, (f3, w3, at3, v) => {
          if (f3 === 1 && w3 === 1) sample.value = view.getFloat64(at3, true);
          else if (f3 === 2 && w3 === 0) sample.timestamp = v;
          else throw new Error(`unexpected Sample field ${f3}/${w3}`);
        });
        ts.samples.push(sample);
      } else throw new Error(`unexpected TimeSeries field ${f2}`);
    });
    out.push(ts);
  });
  return out;
}
