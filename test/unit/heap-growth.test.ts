import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HEAP_GROWTH, nextHeapGrowth } from '../../src/heap-growth.ts';

describe('heap growth by RSS', () => {
  const { roomyPercent: roomy, tightPercent: tight, tightAboveMb: high, roomyBelowMb: low } = HEAP_GROWTH;

  it('is tight above the high mark and roomy below the low one, whatever held before', () => {
    assert.ok(tight < roomy && low < high);
    for (const current of [roomy, tight]) {
      assert.equal(nextHeapGrowth(current, high + 1), tight);
      assert.equal(nextHeapGrowth(current, low - 1), roomy);
    }
  });

  it('keeps what holds between the marks (no flapping around one RSS)', () => {
    const between = (low + high) / 2;
    assert.equal(nextHeapGrowth(roomy, between), roomy);
    assert.equal(nextHeapGrowth(tight, between), tight);
    // A walk up and down through the band changes the setting twice, at the marks.
    let percent: number = roomy;
    const changes: number[] = [];
    for (const rss of [100, 125, 134, 136, 140, 130, 121, 119, 125]) {
      const next = nextHeapGrowth(percent, rss);
      if (next !== percent) changes.push(rss);
      percent = next;
    }
    assert.deepEqual(changes, [136, 119]);
  });
});
