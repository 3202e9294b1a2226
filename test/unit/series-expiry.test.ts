/** Issue 13, finding 8: /metrics request series of pods and processes that are gone expire. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RequestSeriesTable } from '../../src/metrics/request-series.ts';
import { sampleRecord } from './sample-record.ts';

describe('request series expiry', () => {
  it('drops series unseen since the cutoff, keeps the others, and a returning series starts afresh', () => {
    const table = new RequestSeriesTable();
    for (let pod = 0; pod < 100; pod++) table.record(sampleRecord({ pod_name: `pod-${pod}`, namespace: 'ns', timestamp: 1_000 + pod }));
    table.record(sampleRecord({ pod_name: 'live', namespace: 'ns', timestamp: 5_000 }));
    assert.equal(table.all.length, 101);
    assert.equal(table.expire(1_050), 50);
    assert.equal(table.all.length, 51);
    assert.equal(table.expire(1_050), 0);
    assert.equal(table.expire(4_000), 50);
    assert.deepEqual(table.all.map((s) => s.attributes.pod), ['live']);
    assert.equal(table.expired, 100);
    // Churn: new pods again and again never grow the table past what is live.
    for (let round = 0; round < 10; round++) {
      for (let pod = 0; pod < 100; pod++) table.record(sampleRecord({ pod_name: `r${round}-${pod}`, namespace: 'ns', timestamp: 10_000 + round * 100 }));
      table.expire(10_000 + round * 100);
      assert.equal(table.all.length, 100);
    }
    table.record(sampleRecord({ pod_name: 'r0-1', namespace: 'ns', timestamp: 20_000 }));
    const back = table.all.find((s) => s.attributes.pod === 'r0-1')!;
    assert.equal(back.requests, 1, 'a returning series counts from zero');
  });
});

describe('request series lookup', () => {
  it('each request lands in the series of its own labels, whether or not it repeats the last request labels', () => {
    const table = new RequestSeriesTable();
    const variants = [
      {},
      { http_status: 500 },
      { http_method: 'POST' },
      { route: '/other' },
      { local_port: 9090 },
      { service_name: 'svc-b' },
      { process_name: 'proc-b' },
      { pod_name: 'pod-b', namespace: 'ns' },
      { pod_name: 'pod-b', namespace: 'ns-b' },
    ];
    // Each variant four times in a row, then all of them interleaved: hits and misses of the last-series cache.
    const order = [...variants.flatMap((v) => [v, v, v, v]), ...variants, ...variants.toReversed()];
    for (const [i, v] of order.entries()) table.record(sampleRecord({ ...v, timestamp: 1_000 + i }));
    assert.equal(table.all.length, variants.length);
    for (const s of table.all) assert.equal(s.requests, 6, JSON.stringify(s.attributes));
    // The last request recorded is one whose series then expires (its own timestamp is older
    // than its series' newest): a request with its labels after that starts a new series.
    table.record(sampleRecord({ ...variants[1], timestamp: 0 }));
    assert.equal(table.expire(1_000 + order.length - 1), variants.length - 1);
    table.record(sampleRecord({ ...variants[1], timestamp: 5_000 }));
    const back = table.all.find((s) => s.attributes.status_class === '5xx')!;
    assert.equal(back.requests, 1);
  });
});
