/**
 * The HPACK static Huffman code (RFC 7541 Appendix B) and its decoder.
 * The RFC's code is canonical: within one length, codes rise with the symbol, and each
 * length's first code follows the previous length's last. So the code lengths, written
 * here from the appendix, determine every code; the tests check the result against rows
 * of the appendix and its C.4/C.6 examples.
 */

/** Code length in bits of symbols 0..255 and of EOS (256), from RFC 7541 Appendix B. */
// prettier-ignore
export const HUFFMAN_CODE_LENGTHS: readonly number[] = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, //   0- 15
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, //  16- 31
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, //          ' ' - '/'
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, //              '0' - '?'
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, //                '@' - 'O'
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, //             'P' - '_'
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, //                '`' - 'o'
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, //            'p' - 127
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 128-143
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 144-159
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 160-175
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 176-191
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 192-207
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 208-223
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 224-239
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 240-255
  30, //                                                              EOS
];

export const EOS = 256;

/** Codes of symbols 0..256, right-aligned, assigned canonically from the lengths. */
export const HUFFMAN_CODES: readonly number[] = buildCanonicalCodes(HUFFMAN_CODE_LENGTHS);

function buildCanonicalCodes(lengths: readonly number[]): number[] {
  const codes = new Array<number>(lengths.length).fill(0);
  const maxLength = Math.max(...lengths);
  let code = 0;
  for (let len = 1; len <= maxLength; len++) {
    for (let sym = 0; sym < lengths.length; sym++) {
      if (lengths[sym] === len) codes[sym] = code++;
    }
    code *= 2;
  }
  return codes;
}

/**
 * The decoding tree as flat arrays: node n's children are CHILD[2n] (bit 0) and
 * CHILD[2n+1] (bit 1); a child ≥ 0 is a node, a child < 0 is the leaf of symbol −child−1.
 */
const CHILD: Int32Array = buildTree();

function buildTree(): Int32Array {
  const child = new Int32Array(2 * 512);
  let nodes = 1;
  for (let sym = 0; sym <= EOS; sym++) {
    const len = HUFFMAN_CODE_LENGTHS[sym]!;
    const code = HUFFMAN_CODES[sym]!;
    let node = 0;
    for (let bit = len - 1; bit > 0; bit--) {
      const slot = 2 * node + ((code >>> bit) & 1);
      if (child[slot] === 0) child[slot] = nodes++;
      node = child[slot]!;
    }
    child[2 * node + (code & 1)] = -sym - 1;
  }
  return child;
}

/** Per tree node: its depth, and whether its path is all ones (a valid padding prefix). */
const DEPTH = new Uint8Array(512);
const ALL_ONES = new Uint8Array(512);
(function markPaths(node: number, depth: number, allOnes: boolean): void {
  DEPTH[node] = depth;
  ALL_ONES[node] = allOnes ? 1 : 0;
  for (const bit of [0, 1]) {
    const child = CHILD[2 * node + bit]!;
    if (child > 0) markPaths(child, depth + 1, allOnes && bit === 1);
  }
})(0, 0, true);

/**
 * The tree walked four bits at a time: from node n on nibble v, NEXT[16n+v] is the node
 * reached and EMIT[16n+v] the symbol completed on the way (codes are ≥ 5 bits, so at most
 * one), −1 for none, −2 when EOS was completed (an error).
 */
const NEXT = new Uint16Array(512 * 16);
const EMIT = new Int16Array(512 * 16);
for (let node = 0; node < 512; node++) {
  if (node !== 0 && DEPTH[node] === 0) continue; // not a node
  for (let nibble = 0; nibble < 16; nibble++) {
    let at = node;
    let emit = -1;
    for (let shift = 3; shift >= 0; shift--) {
      const next = CHILD[2 * at + ((nibble >>> shift) & 1)]!;
      if (next < 0) {
        emit = -next - 1 === EOS ? -2 : -next - 1;
        at = 0;
      } else {
        at = next;
      }
    }
    NEXT[16 * node + nibble] = at;
    EMIT[16 * node + nibble] = emit;
  }
}

/**
 * Decodes a Huffman-coded string literal to a latin1 string (one char per octet).
 * Null when the input is not a valid encoding: EOS inside, padding longer than 7 bits, or
 * padding that is not the all-ones prefix of EOS (RFC 7541 §5.2).
 */
export function decodeHuffman(buf: Uint8Array, start: number, end: number): string | null {
  // Each symbol takes at least 5 bits.
  const out = Buffer.allocUnsafe(Math.ceil(((end - start) * 8) / 5));
  let n = 0;
  let node = 0;
  for (let i = start; i < end; i++) {
    const byte = buf[i]!;
    let slot = 16 * node + (byte >>> 4);
    let emit = EMIT[slot]!;
    if (emit === -2) return null;
    if (emit >= 0) out[n++] = emit;
    slot = 16 * NEXT[slot]! + (byte & 15);
    emit = EMIT[slot]!;
    if (emit === -2) return null;
    if (emit >= 0) out[n++] = emit;
    node = NEXT[slot]!;
  }
  return node === 0 || (ALL_ONES[node] === 1 && DEPTH[node]! <= 7) ? out.toString('latin1', 0, n) : null;
}
