/**
 * Which served HTTP/2 stream an outbound call belongs to (src/pipeline/h2-callers.ts): exact
 * with one under way, the oldest without a call (else the newest) among several, none when
 * nothing is under way; per process.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { H2Callers } from '../../src/pipeline/h2-callers.ts';

describe('H2Callers', () => {
  it('one stream under way: exact; none: no caller', () => {
    const c = new H2Callers();
    assert.equal(c.pick(10), null);
    c.begin(10, 7, 1);
    assert.deepEqual(c.pick(10), { connId: 7, streamId: 1, inferred: false });
    assert.deepEqual(c.pick(10), { connId: 7, streamId: 1, inferred: false }, 'a second call of the same handler');
    c.end(10, 7, 1);
    assert.equal(c.pick(10), null);
    assert.equal(c.isServing(10, 7, 1), false);
  });

  it('several under way: the oldest without a call, in the order their requests began, inferred; then the newest', () => {
    const c = new H2Callers();
    c.begin(10, 7, 1);
    c.begin(10, 8, 1);
    c.begin(10, 7, 3);
    c.begin(10, 7, 1); // more frames of a stream already under way: no new place in the order
    const picks = [c.pick(10), c.pick(10), c.pick(10), c.pick(10)];
    assert.deepEqual(picks, [
      { connId: 7, streamId: 1, inferred: true },
      { connId: 8, streamId: 1, inferred: true },
      { connId: 7, streamId: 3, inferred: true },
      { connId: 7, streamId: 3, inferred: true },
    ]);
    c.end(10, 8, 1);
    c.begin(10, 8, 3);
    assert.deepEqual(c.pick(10), { connId: 8, streamId: 3, inferred: true }, 'a new stream without a call goes first');
  });

  it('processes are apart', () => {
    const c = new H2Callers();
    c.begin(10, 7, 1);
    c.begin(11, 9, 1);
    assert.deepEqual(c.pick(11), { connId: 9, streamId: 1, inferred: false });
    assert.equal(c.isServing(10, 9, 1), false);
    assert.equal(c.isServing(11, 9, 1), true);
  });
});
