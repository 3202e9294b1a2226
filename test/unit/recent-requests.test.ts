/**
 * RecentRequests (src/pipeline/recent-requests.ts): finished requests by exchange, keyed by a
 * packed number. A clash of packed keys must be a miss, never another request's ticket.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RecentRequests } from '../../src/pipeline/recent-requests.ts';
import { exchangeKey } from '../../src/util/exchange-key.ts';

describe('RecentRequests', () => {
  it('finds a request by generation, connection and seq, and by its exchangeKey()', () => {
    const r = new RecentRequests(8);
    r.set(0, 17, 1, 100);
    r.set(0, 17, 2, 101);
    assert.equal(r.get(0, 17, 1), 100);
    assert.equal(r.get(0, 17, 2), 101);
    assert.equal(r.get(0, 18, 1), undefined);
    assert.equal(r.get(1, 17, 1), undefined, 'another generation is another exchange');
    // A new loader numbers connections again: its exchange takes the key, the old one is gone.
    r.set(1, 17, 1, 200);
    assert.equal(r.get(1, 17, 1), 200);
    assert.equal(r.get(0, 17, 1), undefined);
    assert.equal(r.getByKey(exchangeKey(0, 17, 2)), 101);
    assert.equal(r.hasByKey('0:17'), false, 'a malformed key');
    assert.equal(r.hasByKey('x:y:z'), false);
  });

  it('a clash of packed keys (ids 2^32 apart, seqs 2^21 apart) is a miss, never a wrong match', () => {
    const r = new RecentRequests(8);
    r.set(0, 5, 3, 1);
    r.set(0, 5 + 2 ** 32, 3, 2); // same packed key: the newer takes the slot
    assert.equal(r.get(0, 5 + 2 ** 32, 3), 2);
    assert.equal(r.get(0, 5, 3), undefined, 'the older is forgotten, not answered with the newer');
    r.set(0, 9, 7, 3);
    r.set(0, 9, 7 + 2 ** 21, 4);
    assert.equal(r.get(0, 9, 7), undefined);
    assert.equal(r.get(0, 9, 7 + 2 ** 21), 4);
  });

  it('keeps the last `capacity` insertions; setting one again replaces its ticket in place', () => {
    const r = new RecentRequests(3);
    r.set(0, 1, 1, 10);
    r.set(0, 2, 1, 20);
    r.set(0, 1, 1, 11); // in place: no insertion
    r.set(0, 3, 1, 30);
    assert.equal(r.size, 3);
    assert.equal(r.get(0, 1, 1), 11);
    r.set(0, 4, 1, 40); // evicts the oldest insertion, (0, 1, 1)
    assert.equal(r.get(0, 1, 1), undefined);
    assert.deepEqual([r.get(0, 2, 1), r.get(0, 3, 1), r.get(0, 4, 1)], [20, 30, 40]);
    assert.equal(r.size, 3);
  });

  it('evicting a slot whose key a newer entry took leaves the newer one in place', () => {
    const r = new RecentRequests(2);
    r.set(0, 5, 3, 1); // slot 0
    r.set(0, 5 + 2 ** 32, 3, 2); // slot 1, same packed key: the Map points to slot 1
    r.set(0, 6, 1, 3); // reuses slot 0: must not delete the key slot 1 now owns
    assert.equal(r.get(0, 5 + 2 ** 32, 3), 2);
    assert.equal(r.get(0, 6, 1), 3);
  });
});
