/** HPACK Huffman encoding (tests only: the agent decodes, never encodes). */
import { HUFFMAN_CODE_LENGTHS, HUFFMAN_CODES } from '../../src/http2/huffman.ts';

/** `text` (latin1, one char per octet) Huffman-coded, padded with ones to a byte. */
export function encodeHuffman(text: string): Buffer {
  const out: number[] = [];
  let acc = 0n;
  let bits = 0;
  for (let i = 0; i < text.length; i++) {
    const sym = text.charCodeAt(i) & 0xff;
    acc = (acc << BigInt(HUFFMAN_CODE_LENGTHS[sym]!)) | BigInt(HUFFMAN_CODES[sym]!);
    bits += HUFFMAN_CODE_LENGTHS[sym]!;
    while (bits >= 8) {
      bits -= 8;
      out.push(Number((acc >> BigInt(bits)) & 0xffn));
    }
    acc &= (1n << BigInt(bits)) - 1n;
  }
  if (bits > 0) out.push(Number(((acc << BigInt(8 - bits)) | ((1n << BigInt(8 - bits)) - 1n)) & 0xffn));
  return Buffer.from(out);
}
