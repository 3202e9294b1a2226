/** W3C trace and span ids from a pooled random buffer: one syscall per few hundred ids. */
import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let pos = POOL_BYTES;

function randomHex(bytes: number): string {
  for (;;) {
    if (pos + bytes > POOL_BYTES) {
      randomFillSync(pool);
      pos = 0;
    }
    let zero = true;
    for (let i = pos; i < pos + bytes && zero; i++) zero = pool[i] === 0;
    const hex = pool.toString('hex', pos, pos + bytes);
    pos += bytes;
    // All-zero ids are invalid in W3C Trace Context; astronomically rare, but cheap to refuse.
    if (!zero) return hex;
  }
}

export const newTraceId = (): string => randomHex(16);
export const newSpanId = (): string => randomHex(8);
