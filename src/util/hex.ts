/**
 * Lowercase hex ids (W3C trace and span ids) to bytes, in JavaScript: a span writes three
 * ids and the ring buffer stores them again, and Buffer.write(hex) is a call into C++ that
 * cost more than the 8 or 16 bytes it converts; here checking and converting is one pass.
 */

/** Nibble value of each ASCII code, -1 where it is not a lowercase hex digit. */
const NIBBLE = new Int8Array(128).fill(-1);
for (let i = 0; i < 10; i++) NIBBLE[0x30 + i] = i;
for (let i = 0; i < 6; i++) NIBBLE[0x61 + i] = 10 + i;

/**
 * Writes `hex` (exactly `digits` lowercase hex digits) as bytes into `out` at `at`. False,
 * with `out` partly written, when `hex` is anything else.
 */
export function writeLowerHex(hex: string, digits: number, out: Uint8Array, at: number): boolean {
  if (hex.length !== digits) return false;
  for (let i = 0; i < digits; i += 2) {
    const hi = hex.charCodeAt(i);
    const lo = hex.charCodeAt(i + 1);
    const h = hi < 128 ? NIBBLE[hi]! : -1;
    const l = lo < 128 ? NIBBLE[lo]! : -1;
    if ((h | l) < 0) return false;
    out[at + (i >> 1)] = (h << 4) | l;
  }
  return true;
}
