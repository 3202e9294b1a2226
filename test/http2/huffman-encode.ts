/** HPACK Huffman encoding (tests only: the agent decodes, never encodes). */
import { HUFFMAN_CODE_LENGTHS, HUFFMAN_CODES } from '../../src/http2/huffman.ts';

/** `text` (latin1, one char per octet) Huffman-coded, padded with ones to a byte. */
export function encodeHuffman(text: string): Buffer {
  const out: number[] = [];
  // Pending bits, fewer than 8 + 30: they fit a double exactly.
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < text.length; i++) {
    const sym = text.charCodeAt(i) & 0xff;
    const len = HUFFMAN_CODE_LENGTHS[sym]!;
    acc = acc * 2 ** len + HUFFMAN_CODES[sym]!;
    bits += len;
    while (bits >= 8) {
      bits -= 8;
      const top = Math.floor(acc / 2 ** bits);
      out.push(top);
      acc -= top * 2 ** bits;
    }
  }
  if (bits > 0) out.push(acc * 2 ** (8 - bits) + (2 ** (8 - bits) - 1));
  return Buffer.from(out);
}
