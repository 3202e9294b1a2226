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
