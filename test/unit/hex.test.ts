/** src/util/hex.ts: lowercase hex ids to bytes, checked in the same pass. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { writeLowerHex } from '../../src/util/hex.ts';

describe('writeLowerHex', () => {
  it('writes the bytes of lowercase hex of the given length, at the offset', () => {
    const out = new Uint8Array(10);
    assert.equal(writeLowerHex('00ff7a09c3b1e2d4', 16, out, 1), true);
    assert.deepEqual([...out], [0, 0x00, 0xff, 0x7a, 0x09, 0xc3, 0xb1, 0xe2, 0xd4, 0]);
    const id = '4bf92f3577b34da6a3ce929d0e0e4736';
    const trace = new Uint8Array(16);
    assert.equal(writeLowerHex(id, 32, trace, 0), true);
    assert.equal(Buffer.from(trace).toString('hex'), id);
  });

  it('refuses uppercase, other characters and other lengths', () => {
    const out = new Uint8Array(16);
    for (const bad of ['00FF7a09c3b1e2d4', '00ff7a09c3b1e2dg', '00ff7a09c3b1e2d', '00ff7a09c3b1e2d44', '00ff7a09c3b1e2d\u00e9', '00ff7a09c3b1 2d4', '']) {
      assert.equal(writeLowerHex(bad, 16, out, 0), false, JSON.stringify(bad));
    }
  });
});
