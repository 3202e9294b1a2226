/** HPACK Huffman encoding (tests only: the agent decodes, never encodes). */
import { HUFFMAN_CODE_LENGTHS, HUFFMAN_CODES } from '../../src/http2/huffman.ts';

/** `text` (latin1, one char per octet) Huffman-coded, padded with ones to a byte. */
export function encodeHuffman(text: string): Buffer {
  // At most 30 bits a symbol: the output fits 4 bytes a character.
  const out = Buffer.allocUnsafe(text.length * 4 + 1);
  let at = 0;
  // The byte being filled and how many of its bits are taken (integer ops only: this runs
  // for every header field the fuzz test checks).
  let byte = 0;
  let used = 0;
  for (let i = 0; i < text.length; i++) {
    const sym = text.charCodeAt(i) & 0xff;
    const code = HUFFMAN_CODES[sym]!;
    let len = HUFFMAN_CODE_LENGTHS[sym]!;
    while (len > 0) {
      const take = Math.min(len, 8 - used);
      len -= take;
      byte = (byte << take) | ((code >>> len) & ((1 << take) - 1));
      used += take;
      if (used === 8) {
        out[at++] = byte;
        byte = 0;
        used = 0;
      }
    }
  }
  if (used > 0) out[at++] = (byte << (8 - used)) | ((1 << (8 - used)) - 1);
  return out.subarray(0, at);
}
