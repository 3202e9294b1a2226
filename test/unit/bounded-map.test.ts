/**
 * src/util/bounded-map.ts: BoundedMap (a cache forgetting the oldest insertion) and
 * OldestFirstMap (a work queue whose owner evicts its oldest live entry), each against a plain
 * Map model driven by pseudo-random operations.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BoundedMap, OldestFirstMap } from '../../src/util/bounded-map.ts';
import { prng } from '../harness/prng.ts';

describe('BoundedMap', () => {
  it('keeps at most capacity entries, forgetting the oldest insertion first', () => {
    const m = new BoundedMap<string, number>(3);
    for (const [i, k] of ['a', 'b', 'c'].entries()) m.set(k, i);
    assert.equal(m.size, 3);
    m.set('a', 10); // a replaced value keeps its insertion slot
    assert.equal(m.size, 3);
    assert.equal(m.get('a'), 10);
    m.set('d', 3);
    assert.equal(m.has('a'), false, 'a was inserted first');
    assert.deepEqual(['b', 'c', 'd'].map((k) => m.get(k)), [1, 2, 3]);
    m.set('e', 4);
    assert.equal(m.has('b'), false);
    assert.equal(m.size, 3);
  });

  it('matches a FIFO model over 20,000 pseudo-random sets', () => {
    const next = prng(7);
    const capacity = 50;
    const m = new BoundedMap<number, number>(capacity);
    const model = new Map<number, number>();
    for (let i = 0; i < 20_000; i++) {
      const k = next() % 200;
      if (!model.has(k) && model.size === capacity) model.delete(model.keys().next().value!);
      model.set(k, i);
      m.set(k, i);
      assert.equal(m.size, model.size);
    }
    for (let k = 0; k < 200; k++) assert.equal(m.get(k), model.get(k), `key ${k}`);
  });
});

describe('OldestFirstMap', () => {
  it('shift() returns the oldest live entry: deleted ones are passed, a re-inserted key is young again', () => {
    const m = new OldestFirstMap<string, number>();
    for (const [i, k] of ['a', 'b', 'c', 'd'].entries()) m.set(k, i);
    m.delete('a');
    m.set('b', 20); // replaced in place: keeps its age
    m.delete('c');
    m.set('c', 30); // deleted, then inserted again: now the youngest
    assert.deepEqual(m.shift(), ['b', 20]);
    assert.deepEqual(m.shift(), ['d', 3]);
    assert.deepEqual(m.shift(), ['c', 30]);
    assert.equal(m.shift(), undefined);
    assert.equal(m.size, 0);
  });

  it('evicts nothing by itself: a slow entry outlives any number of short-lived ones', () => {
    const m = new OldestFirstMap<number, string>();
    m.set(-1, 'slow');
    for (let i = 0; i < 100_000; i++) {
      m.set(i, 'fast');
      m.delete(i);
    }
    assert.equal(m.size, 1);
    assert.deepEqual(m.shift(), [-1, 'slow']);
  });

  it('matches a Map model (whose insertion order is the eviction order) over 50,000 pseudo-random operations', () => {
    const next = prng(15);
    const m = new OldestFirstMap<number, number>();
    const model = new Map<number, number>();
    for (let i = 0; i < 50_000; i++) {
      const op = next() % 10;
      const k = next() % 300;
      if (op < 5) {
        m.set(k, i);
        model.set(k, i);
      } else if (op < 8) {
        assert.equal(m.delete(k), model.delete(k));
      } else {
        const oldest = model.entries().next();
        if (!oldest.done) model.delete(oldest.value[0]);
        assert.deepEqual(m.shift(), oldest.done ? undefined : oldest.value, `shift at ${i}`);
      }
      assert.equal(m.size, model.size);
      assert.equal(m.has(k), model.has(k));
      assert.equal(m.get(k), model.get(k));
    }
    assert.deepEqual([...m.values()], [...model.values()]);
  });
});
