/**
 * The remote-write request without a TSDB: encodeWriteRequest's bytes decoded by an
 * independent reader (test/harness/remote-write-decode.ts), the shared writer's int64, and
 * one RemoteWriter flush to a local receiver. The VictoriaMetrics round trip is in
 * test/e2e/remote-write.test.ts.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { uncompress } from 'snappyjs';
import { encodeWriteRequest, REMOTE_WRITE_SERIES, RemoteWriter, requestLabels, type TimeSeries } from '../../src/export/remote-write.ts';
import { int64Size, ProtobufWriter } from '../../src/util/protobuf-writer.ts';
import { prng } from '../harness/prng.ts';
import { decodeWriteRequest, type DecodedSeries } from '../harness/remote-write-decode.ts';
import { sampleRecord } from './sample-record.ts';

const asDecoded = (series: readonly TimeSeries[]): DecodedSeries[] =>
  series.map((s) => ({
    labels: s.labels.map(([n, v]) => [n, v]),
    samples: s.samples.map((p) => ({ value: p.value, timestamp: p.timestampMs })),
  }));

const EDGE_SERIES: TimeSeries[] = [
  {
    labels: [['__name__', 'perfcatch_request_duration_ms'], ['route', '/ü/{id}'], ['service', 'checkout']],
    samples: [
      { value: 1.25, timestampMs: 1_700_000_000_123 },
      { value: -0.5, timestampMs: 0 },
      { value: 3, timestampMs: -1 },
    ],
  },
  {
    labels: [['__name__', 'x'], ['empty', '']],
    samples: [
      { value: Infinity, timestampMs: 127 },
      { value: 0, timestampMs: 128 },
    ],
  },
  { labels: [['__name__', 'no_samples']], samples: [] },
];

describe('encodeWriteRequest', () => {
  it('writes the bytes the hand-written encoder wrote before it moved onto the shared protobuf writer', () => {
    // Captured from the encoder as it was before issue 15 (its own tag, varint and int64 code).
    const golden =
      '0a88010a290a085f5f6e616d655f5f121d7065726663617463685f726571756573745f6475726174696f6e5f6d730a110a05726f7574' +
      '6512082fc3bc2f7b69647d0a130a07736572766963651208636865636b6f7574121009000000000000f43f10fbd095ffbc31120b0900' +
      '0000000000e0bf1000121409000000000000084010ffffffffffffffffff010a350a0d0a085f5f6e616d655f5f1201780a090a05656d' +
      '7074791200120b09000000000000f07f107f120c0900000000000000001080010a180a160a085f5f6e616d655f5f120a6e6f5f73616d' +
      '706c6573';
    assert.equal(Buffer.from(encodeWriteRequest(EDGE_SERIES)).toString('hex'), golden);
  });

  it('decodes back to the same series: UTF-8 labels, empty values, negative and 2^53 timestamps, special doubles', () => {
    const series: TimeSeries[] = [
      ...EDGE_SERIES,
      {
        labels: [['__name__', 'edges'], ['a', 'x'.repeat(300)], ['b', '日本語 🚀']],
        samples: [
          { value: NaN, timestampMs: Number.MAX_SAFE_INTEGER },
          { value: -Infinity, timestampMs: Number.MIN_SAFE_INTEGER },
          { value: -0, timestampMs: 2 ** 32 },
          { value: Number.MIN_VALUE, timestampMs: -(2 ** 31) },
        ],
      },
    ];
    assert.deepEqual(decodeWriteRequest(encodeWriteRequest(series)), asDecoded(series));
    assert.deepEqual(decodeWriteRequest(encodeWriteRequest([])), []);
  });

  it('decodes back to the same series for 300 pseudo-random batches', () => {
    const next = prng(15);
    const text = (n: number) => Array.from({ length: n }, () => String.fromCodePoint(32 + (next() % 2000))).join('');
    for (let round = 0; round < 300; round++) {
      const series: TimeSeries[] = Array.from({ length: next() % 4 }, (_, i) => ({
        labels: [['__name__', `m${i}`], ...Array.from({ length: next() % 4 }, (_, j) => [`l${j}`, text(next() % 40)] as const)],
        samples: Array.from({ length: next() % 5 }, () => ({
          value: (next() - 2 ** 31) / (1 + (next() % 1000)),
          timestampMs: (next() % 2 ? -1 : 1) * (next() * 2 ** 21 + (next() % 2 ** 21)),
        })),
      }));
      assert.deepEqual(decodeWriteRequest(encodeWriteRequest(series)), asDecoded(series), `round ${round}`);
    }
  });

  it('refuses a timestamp that is not a safe integer', () => {
    for (const timestampMs of [1.5, 2 ** 53, NaN]) {
      assert.throws(() => encodeWriteRequest([{ labels: [['__name__', 'x']], samples: [{ value: 1, timestampMs }] }]), RangeError);
    }
  });
});

describe('ProtobufWriter.int64', () => {
  it('writes the varint of the 64-bit two\'s complement, int64Size bytes long', () => {
    const cases: [number, string][] = [
      [0, '00'],
      [1, '01'],
      [127, '7f'],
      [128, '8001'],
      [300, 'ac02'],
      [2 ** 53 - 1, 'ffffffffffffff0f'],
      [-1, 'ffffffffffffffffff01'],
      [-2, 'feffffffffffffffff01'],
      [-(2 ** 53) + 1, '81808080808080f0ff01'],
    ];
    for (const [v, hex] of cases) {
      const w = new ProtobufWriter(1);
      w.int64(v);
      assert.equal(w.view().toString('hex'), hex, String(v));
      assert.equal(int64Size(v), hex.length / 2, `size of ${v}`);
    }
  });
});

describe('RemoteWriter', () => {
  it('posts one snappy WriteRequest: five series per request, bounded sorted labels, the request\'s start as timestamp', async () => {
    const bodies: { headers: IncomingHttpHeaders; body: Buffer }[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        bodies.push({ headers: req.headers, body: Buffer.concat(chunks) });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as AddressInfo;
      const writer = new RemoteWriter({ url: `http://127.0.0.1:${port}/api/v1/write`, flushIntervalMs: 60_000 });
      const records = [
        sampleRecord({ request_id: 'a', timestamp: 1_700_000_000.25, duration_ms: 12.5, namespace: 'shop', pod_name: 'shop-0' }),
        sampleRecord({ request_id: 'b', timestamp: 1_700_000_001.5, http_method: 'PROPFIND', http_status: null, route: null }),
      ];
      for (const r of records) writer.add(r);
      assert.equal(writer.queued, 2 * REMOTE_WRITE_SERIES.length);
      await writer.shutdown();
      assert.deepEqual(writer.counters, { samplesSent: 10, samplesDropped: 0, requestsFailed: 0, lastError: null });
      assert.equal(bodies.length, 1);
      const { headers, body } = bodies[0]!;
      assert.equal(headers['content-encoding'], 'snappy');
      assert.equal(headers['content-type'], 'application/x-protobuf');
      assert.equal(headers['x-prometheus-remote-write-version'], '0.1.0');

      const expected = records.flatMap((r) =>
        REMOTE_WRITE_SERIES.map(([name, read]) => ({
          labels: [['__name__', name] as [string, string], ...requestLabels(r).map(([n, v]): [string, string] => [n, v])],
          samples: [{ value: read(r), timestamp: Math.round(r.timestamp * 1000) }],
        })),
      );
      const key = (s: DecodedSeries) => JSON.stringify(s.labels);
      const decoded = decodeWriteRequest(uncompress(new Uint8Array(body)));
      assert.deepEqual(decoded.map(key).sort(), expected.map(key).sort());
      for (const s of decoded) assert.deepEqual(s, expected.find((e) => key(e) === key(s)));
      assert.deepEqual(Object.fromEntries(requestLabels(records[1]!)), {
        method: 'OTHER', port: '8080', process: 'node', route: 'none', service: 'checkout', status_class: 'none',
      });
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
