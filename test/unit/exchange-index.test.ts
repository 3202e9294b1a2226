/**
 * src/util/exchange-index.ts: the finished-requests index by (generation, conn id, seq),
 * against a FIFO Map model keyed by exchangeKey() strings, over pseudo-random sets with
 * conn ids shaped as the kernel makes them (cpu << 40 | counter).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExchangeIndex } from '../../src/util/exchange-index.ts';
import { exchangeKey, exchangeKeyParts } from '../../src/util/exchange-key.ts';
import { prng } from '../harness/prng.ts';

const connIdOf = (cpu: number, counter: number) => cpu * 2 ** 40 + counter;

function checkAgainstModel(capacity: number, keys: number, steps: number, seed: number): void {
  const next = prng(seed);
  const index = new ExchangeIndex(capacity);
  const model = new Map<string, number>();
  const keyOf = (k: number) => ({ generation: k % 3, connId: connIdOf(k % 2, 1 + (k >> 3)), seq: 1 + ((k >> 1) % 4) });
  for (let i = 0; i < steps; i++) {
    const { generation, connId, seq } = keyOf(next() % keys);
    const s = exchangeKey(generation, connId, seq);
    if (!model.has(s) && model.size === capacity) model.delete(model.keys().next().value!);
    model.set(s, i);
    index.set(generation, connId, seq, i);
    assert.equal(index.size, model.size, `size after step ${i}`);
    if (i % 97 === 0 || i === steps - 1) {
      for (let k = 0; k < keys; k++) {
        const key = keyOf(k);
        const want = model.get(exchangeKey(key.generation, key.connId, key.seq)) ?? -1;
        assert.equal(index.get(key.generation, key.connId, key.seq), want, `key ${k} at step ${i}`);
        assert.equal(index.has(key.generation, key.connId, key.seq), want !== -1);
      }
    }
  }
}

describe('ExchangeIndex', () => {
  it('keeps at most capacity entries, forgetting the oldest insertion; a replaced value keeps its age', () => {
    const m = new ExchangeIndex(3);
    m.set(0, connIdOf(1, 5), 1, 10);
    m.set(0, connIdOf(1, 5), 2, 11);
    m.set(1, connIdOf(1, 5), 1, 12); // another generation: another key
    m.set(0, connIdOf(1, 5), 1, 20);
    assert.equal(m.size, 3);
    assert.equal(m.get(0, connIdOf(1, 5), 1), 20);
    m.set(0, connIdOf(0, 5), 1, 13); // same counter on another cpu: another key
    assert.equal(m.has(0, connIdOf(1, 5), 1), false, 'inserted first');
    assert.deepEqual([m.get(0, connIdOf(1, 5), 2), m.get(1, connIdOf(1, 5), 1), m.get(0, connIdOf(0, 5), 1)], [11, 12, 13]);
    assert.equal(m.get(7, 7, 7), -1);
  });

  it('matches the model over 20,000 sets (capacity 50, 200 keys)', () => checkAgainstModel(50, 200, 20_000, 7));

  it('matches the model when nearly every key collides (capacity 10 in 16 slots, 400 keys)', () => checkAgainstModel(10, 400, 20_000, 99));

  it('reads back the parts of an exchangeKey() string', () => {
    assert.deepEqual(exchangeKeyParts(exchangeKey(2, connIdOf(3, 77), 9)), { generation: 2, connId: connIdOf(3, 77), seq: 9 });
    assert.equal(exchangeKeyParts('a:b'), null);
    assert.equal(exchangeKeyParts('1:2'), null);
  });
});
