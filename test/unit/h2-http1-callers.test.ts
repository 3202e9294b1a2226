/** Which HTTP/1 request an outbound HTTP/2 call no served stream claimed belongs to (src/pipeline/h2-http1-callers.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Http1Callers, type Http1CallerChoice } from '../../src/pipeline/h2-http1-callers.ts';

const SETTLE_MS = 5;
const ms = (n: number) => BigInt(n) * 1_000_000n;

function callers() {
  const settled: { call: string; caller: Http1CallerChoice | null }[] = [];
  const c = new Http1Callers<string>((u, caller) => settled.push({ call: u.call, caller }), SETTLE_MS);
  return { c, settled, wait: () => new Promise((r) => setTimeout(r, SETTLE_MS * 4)) };
}

describe('HTTP/1 callers of outbound HTTP/2 calls', () => {
  it('one request whose window holds the call: exact; none: null; other processes and windows ignored', async () => {
    const { c, settled, wait } = callers();
    c.watch(1);
    c.served(1, { connKey: 'a', tid: 10, startNs: ms(0), endNs: ms(10) });
    c.served(1, { connKey: 'b', tid: 10, startNs: ms(20), endNs: ms(30) });
    c.served(2, { connKey: 'other-process', tid: 10, startNs: ms(0), endNs: ms(100) });
    c.park({ pid: 1, tid: 10, startNs: ms(25), order: 1, call: 'in b' });
    c.park({ pid: 1, tid: 10, startNs: ms(15), order: 1, call: 'between' });
    assert.equal(c.parked, 2);
    await wait();
    assert.equal(c.parked, 0);
    assert.deepEqual(settled, [
      { call: 'between', caller: null },
      { call: 'in b', caller: { connKey: 'b', inferred: false } },
    ]);
  });

  it('a request that ends after the call is parked still claims it (records arrive late)', async () => {
    const { c, settled, wait } = callers();
    c.watch(1);
    c.park({ pid: 1, tid: 10, startNs: ms(5), order: 1, call: 'x' });
    c.served(1, { connKey: 'a', tid: 10, startNs: ms(0), endNs: ms(10) });
    await wait();
    assert.deepEqual(settled, [{ call: 'x', caller: { connKey: 'a', inferred: false } }]);
  });

  it('several windows hold the call: the one on its thread; else the earliest begun without a call, else the latest begun, inferred', async () => {
    const { c, settled, wait } = callers();
    c.watch(1);
    c.served(1, { connKey: 'a', tid: 10, startNs: ms(0), endNs: ms(100) });
    c.served(1, { connKey: 'b', tid: 11, startNs: ms(10), endNs: ms(100) });
    c.served(1, { connKey: 'c', tid: 11, startNs: ms(20), endNs: ms(100) });
    c.park({ pid: 1, tid: 10, startNs: ms(50), order: 1, call: 'thread 10' });
    c.park({ pid: 1, tid: 11, startNs: ms(50), order: 1, call: 'thread 11, first' });
    c.park({ pid: 1, tid: 11, startNs: ms(60), order: 1, call: 'thread 11, second' });
    c.park({ pid: 1, tid: 11, startNs: ms(70), order: 1, call: 'thread 11, third' });
    await wait();
    assert.deepEqual(settled, [
      { call: 'thread 10', caller: { connKey: 'a', inferred: false } },
      { call: 'thread 11, first', caller: { connKey: 'b', inferred: true } },
      { call: 'thread 11, second', caller: { connKey: 'c', inferred: true } },
      { call: 'thread 11, third', caller: { connKey: 'c', inferred: true } },
    ]);
  });

  it('requests of processes with no outbound HTTP/2 connection are not kept; flush settles at once', () => {
    const { c, settled } = callers();
    c.served(1, { connKey: 'a', tid: 10, startNs: ms(0), endNs: ms(10) });
    c.park({ pid: 1, tid: 10, startNs: ms(5), order: 1, call: 'x' });
    c.flush();
    assert.deepEqual(settled, [{ call: 'x', caller: null }]);
  });

  it('a call settles after the calls of its process that started before it, in that order', () => {
    const { c, settled } = callers();
    c.watch(1);
    c.served(1, { connKey: 'a', tid: 10, startNs: ms(0), endNs: ms(100) });
    c.served(1, { connKey: 'b', tid: 10, startNs: ms(5), endNs: ms(100) });
    // Parked in the order they ended; the later-started one ended first.
    c.park({ pid: 1, tid: 10, startNs: ms(30), order: 1, call: 'started second' });
    c.park({ pid: 1, tid: 10, startNs: ms(20), order: 1, call: 'started first' });
    c.flush();
    assert.deepEqual(settled, [
      { call: 'started first', caller: { connKey: 'a', inferred: true } },
      { call: 'started second', caller: { connKey: 'b', inferred: true } },
    ]);
  });
});
