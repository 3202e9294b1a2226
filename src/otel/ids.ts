/**
 * W3C trace and span ids from a pooled random buffer: one syscall and one hex conversion per
 * few hundred ids. Each id is a slice of the pool's hex string (V8 keeps it as a view of
 * the pool, no copy); converting every id on its own was half of what its id cost.
 */
import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let poolHex = '';
let pos = POOL_BYTES * 2; // in hex digits

const ZEROS: Record<number, string> = { 16: '0'.repeat(16), 32: '0'.repeat(32) };

function randomHex(digits: 16 | 32): string {
  for (;;) {
    if (pos + digits > poolHex.length) {
      randomFillSync(pool);
      poolHex = pool.toString('hex');
      pos = 0;
    }
    const hex = poolHex.slice(pos, pos + digits);
    pos += digits;
    // All-zero ids are invalid in W3C Trace Context; astronomically rare, but cheap to refuse.
    if (hex !== ZEROS[digits]) return hex;
  }
}

export const newTraceId = (): string => randomHex(32);
export const newSpanId = (): string => randomHex(16);
