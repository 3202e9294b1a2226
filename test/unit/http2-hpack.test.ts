/**
 * HPACK decoding (RFC 7541): the Huffman code against rows of Appendix B, the examples of
 * Appendix C (integers, literals, dynamic table with eviction, Huffman), and the cases where
 * the decoder must not guess: malformed blocks, indexes past the table, blocks cut short,
 * tables it never saw.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HpackDecoder, type HeaderField } from '../../src/http2/hpack.ts';
import { decodeHuffman, EOS, HUFFMAN_CODE_LENGTHS, HUFFMAN_CODES } from '../../src/http2/huffman.ts';
import { encodeHuffman } from '../http2/huffman-encode.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const pairs = (fields: HeaderField[] | undefined) => fields?.map((f) => [f.name, f.value]);

describe('Huffman code (RFC 7541 Appendix B)', () => {
  it('is a complete prefix code of 257 symbols', () => {
    assert.equal(HUFFMAN_CODE_LENGTHS.length, 257);
    assert.equal(HUFFMAN_CODE_LENGTHS.reduce((s, l) => s + 2 ** -l, 0), 1);
  });

  it('matches rows of the appendix (code as hex, length in bits)', () => {
    // prettier-ignore
    const rows: [number, number, number][] = [
      [0, 0x1ff8, 13], [1, 0x7fffd8, 23], [9, 0xffffea, 24], [10, 0x3ffffffc, 30], [13, 0x3ffffffd, 30],
      [22, 0x3ffffffe, 30], [31, 0xffffffb, 28], [32, 0x14, 6], [36, 0x1ff9, 13], [48, 0x0, 5], [58, 0x5c, 7],
      [60, 0x7ffc, 15], [88, 0xfc, 8], [92, 0x7fff0, 19], [97, 0x3, 5], [123, 0x7ffe, 15], [126, 0x1ffd, 13],
      [127, 0xffffffc, 28], [128, 0xfffe6, 20], [153, 0x1fffdc, 21], [170, 0x3fffde, 22], [171, 0xfffff0, 24],
      [195, 0x7fff1, 19], [199, 0x1ffffec, 25], [203, 0x7ffffde, 27], [208, 0x7fff2, 19], [220, 0xffffffd, 28],
      [240, 0x3ffffeb, 26], [249, 0xffffffe, 28], [255, 0x3ffffee, 26], [EOS, 0x3fffffff, 30],
    ];
    for (const [sym, code, len] of rows) assert.deepEqual([HUFFMAN_CODES[sym], HUFFMAN_CODE_LENGTHS[sym]], [code, len], `symbol ${sym}`);
  });

  it('decodes the appendix C examples and every single symbol', () => {
    for (const [h, text] of [
      ['f1e3 c2e5 f23a 6ba0 ab90 f4ff', 'www.example.com'],
      ['a8eb 1064 9cbf', 'no-cache'],
      ['25a8 49e9 5ba9 7d7f', 'custom-key'],
      ['6402', '302'],
      ['aec3 771a 4b', 'private'],
      ['d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff', 'Mon, 21 Oct 2013 20:13:21 GMT'],
      ['9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3', 'https://www.example.com'],
      ['9bd9 ab', 'gzip'],
    ] as const) {
      const b = hex(h);
      assert.equal(decodeHuffman(b, 0, b.length), text);
    }
    for (let sym = 0; sym < 256; sym++) {
      const text = String.fromCharCode(sym);
      const b = encodeHuffman(text);
      assert.equal(decodeHuffman(b, 0, b.length), text, `symbol ${sym}`);
    }
  });

  it('rejects EOS, padding over 7 bits and padding that is not all ones', () => {
    assert.equal(decodeHuffman(hex('ffffffff'), 0, 4), null, 'EOS inside');
    assert.equal(decodeHuffman(hex('1f ff'), 0, 2), null, "'a' then 11 bits of padding");
    assert.equal(decodeHuffman(hex('18'), 0, 1), null, "'a' padded with zeros");
    assert.equal(decodeHuffman(hex('1f'), 0, 1), 'a');
    assert.equal(decodeHuffman(hex(''), 0, 0), '');
  });
});

describe('HPACK decoder (RFC 7541 Appendix C)', () => {
  it('C.3 / C.4: requests without and with Huffman, one table across blocks', () => {
    for (const blocks of [
      ['828684410f7777772e6578616d706c652e636f6d', '828684be58086e6f2d6361636865', '828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565'],
      ['828684418cf1e3c2e5f23a6ba0ab90f4ff', '828684be5886a8eb10649cbf', '828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf'],
    ]) {
      const d = new HpackDecoder({ tableKnown: true });
      assert.deepEqual(pairs(d.decode(hex(blocks[0]!), true)?.fields), [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']]);
      assert.deepEqual(pairs(d.decode(hex(blocks[1]!), true)?.fields), [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache']]);
      assert.deepEqual(pairs(d.decode(hex(blocks[2]!), true)?.fields), [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']]);
      assert.equal(d.dynamicEntries, 3);
    }
  });

  it('C.5 / C.6: responses with a 256-byte table, evictions, Huffman', () => {
    const date1 = 'Mon, 21 Oct 2013 20:13:21 GMT';
    const date2 = 'Mon, 21 Oct 2013 20:13:22 GMT';
    const cookie = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1';
    const expected = [
      [[':status', '302'], ['cache-control', 'private'], ['date', date1], ['location', 'https://www.example.com']],
      [[':status', '307'], ['cache-control', 'private'], ['date', date1], ['location', 'https://www.example.com']],
      [[':status', '200'], ['cache-control', 'private'], ['date', date2], ['location', 'https://www.example.com'], ['content-encoding', 'gzip'], ['set-cookie', cookie]],
    ];
    for (const blocks of [
      [
        '4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d',
        '4803333037c1c0bf',
        '88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b2076657273696f6e3d31',
      ],
      [
        '488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3',
        '4883640effc1c0bf',
        '88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007',
      ],
    ]) {
      const d = new HpackDecoder({ tableKnown: true });
      // The examples assume a 256-byte table: a block holding only the size update sets it.
      assert.deepEqual(d.decode(hex('3fe101'), true)?.fields, []);
      blocks.forEach((b, i) => assert.deepEqual(pairs(d.decode(hex(b), true)?.fields), expected[i], `block ${i + 1}`));
      assert.equal(d.dynamicEntries, 3);
    }
  });
});

describe('HPACK decoder: no guessing', () => {
  it('an index past the table breaks the decoder for good', () => {
    const d = new HpackDecoder({ tableKnown: true });
    assert.equal(d.decode(hex('82 be'), true), null, 'index 62 with an empty table');
    assert.equal(d.error, 'index-out-of-table');
    assert.equal(d.decode(hex('82'), true), null, 'nothing after the error');
  });

  for (const [what, block, error] of [
    ['index 0', '80', 'index-zero'],
    ['an integer over 2^28', 'ff ff ff ff ff 7f', 'bad-integer'],
    ['a string past the block', '40 05 61 62', 'string-past-block'],
    ['bad Huffman padding', '40 81 00 00', 'bad-huffman'],
    ['a size update over the SETTINGS limit', '3fe21f', 'size-update-too-large'],
    ['a size update after a field', '82 20', 'size-update-misplaced'],
  ] as const) {
    it(`${what} is an error`, () => {
      const d = new HpackDecoder({ tableKnown: true });
      assert.equal(d.decode(hex(block), true), null);
      assert.equal(d.error, error);
    });
  }

  it('a size update within what SETTINGS allowed is taken; past our own cap it is a distinct error', () => {
    const d = new HpackDecoder({ tableKnown: true });
    d.allowTableSize(8192);
    assert.ok(d.decode(hex('3fe13f'), true), 'size update to 8192');
    const big = new HpackDecoder({ tableKnown: true });
    big.allowTableSize(1 << 20);
    assert.equal(big.decode(hex('3fe1ff3f'), true), null);
    assert.equal(big.error, 'table-too-large');
  });

  it('a block cut short: the fields before the cut, then an unknown table', () => {
    const d = new HpackDecoder({ tableKnown: true });
    const full = hex('828684418cf1e3c2e5f23a6ba0ab90f4ff');
    const cut = d.decode(full.subarray(0, 8), false)!;
    assert.deepEqual(pairs(cut.fields), [[':method', 'GET'], [':scheme', 'http'], [':path', '/']]);
    assert.equal(cut.cut, true);
    assert.equal(d.tableKnown, false);
    // Static references and literals stay exact.
    assert.deepEqual(pairs(d.decode(hex('828684 5886a8eb10649cbf'), true)!.fields), [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], ['cache-control', 'no-cache']]);
    // A reference into the table the cut hid: the table may be out of sync, so the decoder stops.
    assert.equal(d.decode(hex('82 be'), true), null);
    assert.equal(d.error, 'dynamic-table-unknown');
    assert.equal(d.decode(hex('82'), true), null, 'nothing decoded after it, static references included');
  });

  it('a literal whose name is a dynamic entry of an unknown table stops the decoder too', () => {
    const d = new HpackDecoder({ tableKnown: false });
    assert.equal(d.decode(hex('7e 01 78'), true), null);
    assert.equal(d.error, 'dynamic-table-unknown');
  });

  it('a size update to 0 empties an unknown table: it is known again (then back to 4096)', () => {
    const d = new HpackDecoder({ tableKnown: false });
    assert.deepEqual(pairs(d.decode(hex('20 3fe11f 40 01 61 01 62 be'), true)!.fields), [['a', 'b'], ['a', 'b']]);
    assert.equal(d.tableKnown, true);
    assert.equal(d.error, null);
  });

  it('a table never seen (capture joined mid-way): static entries and literals, until a dynamic reference', () => {
    const d = new HpackDecoder({ tableKnown: false });
    assert.deepEqual(pairs(d.decode(hex('82 87 0f00 01 79'), true)!.fields), [[':method', 'GET'], [':scheme', 'https'], ['accept-charset', 'y']]);
    assert.equal(d.decode(hex('82 c5'), true), null);
    assert.equal(d.error, 'dynamic-table-unknown');
  });

  it('stop() (the other direction desynced) ends decoding without changing an earlier error', () => {
    const d = new HpackDecoder({ tableKnown: true });
    d.stop();
    assert.equal(d.decode(hex('82'), true), null);
    assert.equal(d.error, 'stopped');
    const e = new HpackDecoder({ tableKnown: true });
    e.decode(hex('80'), true);
    e.stop();
    assert.equal(e.error, 'index-zero');
  });

  it('header lists past the bound are left out, while the table still takes them in', () => {
    const d = new HpackDecoder({ tableKnown: true });
    d.allowTableSize(65536);
    const value = 'v'.repeat(40_000);
    const literal = (name: string) => Buffer.concat([hex('40'), Buffer.from([name.length]), Buffer.from(name), hex('7fc1b702'), Buffer.from(value)]);
    // Size update to 65536, then two 40,000-byte fields: the second is over the 64 KiB list bound.
    const out = d.decode(Buffer.concat([hex('3fe1ff03'), literal('a'), literal('b')]), true)!;
    assert.equal(out.overflowed, true);
    assert.deepEqual(out.fields.map((f) => f.name), ['a']);
    assert.equal(d.dynamicEntries, 1, 'the second evicted the first: the table still follows the encoder');
    assert.deepEqual(pairs(d.decode(hex('be'), true)!.fields), [['b', value]]);
  });
});
