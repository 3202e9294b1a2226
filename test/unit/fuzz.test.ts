/**
 * Issue 13, finding 7: seeded in-process fuzz of what reads untrusted bytes — the HTTP head
 * parsers and framing (server and client bytes captured by the kernel) and the loader record
 * decoder — over 1,200,000 mutated inputs. Nothing throws (the decoder only its own
 * RecordDecodeError), nothing hangs (the whole run is timed), and the outputs hold their
 * invariants: no control character or undecodable byte in any string a record keeps.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { decodeRecord, RecordDecodeError } from '../../src/decode/records.ts';
import { requestLength } from '../../src/http/framing.ts';
import { HeaderSelection, parseRequestHead, parseResponseHead } from '../../src/http/parse.ts';
import { prng } from '../harness/prng.ts';

const SEED = 0x13_2026;
const HTTP_INPUTS = 1_000_000;
const RECORD_INPUTS = 200_000;

const CORPUS = [
  'GET /items/42?x=1 HTTP/1.1\r\nHost: a\r\nX-Correlation-ID: abc\r\nUser-Agent: curl/8\r\n\r\n',
  'POST /café/ü HTTP/1.1\r\nContent-Length: 5\r\nTraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\nhello',
  'PUT http://h:8080/a/b?c#frag HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  'OPTIONS * HTTP/1.1\r\n\r\n',
  'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
  'HTTP/1.0 404 \r\n\r\n',
  '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', // a TLS ClientHello's start
  'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', // h2c preface
].map((s) => Buffer.from(s, 'utf8'));

const SPICE = [0x00, 0x07, 0x0a, 0x0d, 0x1b, 0x20, 0x3a, 0x3f, 0x23, 0x25, 0x7f, 0x80, 0x85, 0x9b, 0xc0, 0xc3, 0xe2, 0xed, 0xf0, 0xf4, 0xff];

function mutate(base: Buffer, rand: () => number): Buffer {
  const b = Buffer.from(base);
  let out: Buffer = b;
  const edits = 1 + (rand() % 4);
  for (let e = 0; e < edits; e++) {
    const at = out.length ? rand() % out.length : 0;
    switch (rand() % 6) {
      case 0: // flip a bit
        if (out.length) out[at] = out[at]! ^ (1 << (rand() % 8));
        break;
      case 1: // a telling byte
        if (out.length) out[at] = SPICE[rand() % SPICE.length]!;
        break;
      case 2: // insert random bytes
        out = Buffer.concat([out.subarray(0, at), Buffer.from(Array.from({ length: 1 + (rand() % 8) }, () => rand() & 0xff)), out.subarray(at)]);
        break;
      case 3: // delete
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1 + (rand() % 8))]);
        break;
      case 4: // truncate (the capture size cuts heads anywhere)
        out = out.subarray(0, at);
        break;
      default: // splice another corpus entry in
        out = Buffer.concat([out.subarray(0, at), CORPUS[rand() % CORPUS.length]!.subarray(rand() % 16)]);
    }
  }
  return out;
}

// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\ufffd]/;

describe(`fuzz (seed ${SEED.toString(16)})`, () => {
  it(`HTTP parsers and framing: ${HTTP_INPUTS.toLocaleString('en')} mutated heads, no throw, no control characters out`, () => {
    const rand = prng(SEED);
    const wanted = new HeaderSelection(['x-correlation-id', 'traceparent', 'user-agent', 'host']);
    const started = performance.now();
    let parsed = 0;
    for (let n = 0; n < HTTP_INPUTS; n++) {
      const input = mutate(CORPUS[rand() % CORPUS.length]!, rand);
      const head = parseRequestHead(input, wanted);
      if (head) {
        parsed++;
        for (const s of [head.method, head.path, head.query ?? '', ...head.headers.values()]) {
          if (UNSAFE.test(s)) assert.fail(`unsafe ${JSON.stringify(s)} from ${input.toString('hex')}`);
        }
        assert.match(head.method, /^[A-Z][A-Z-]*$/);
        assert.ok(head.version === '1.0' || head.version === '1.1');
        const length = requestLength(input);
        if (length !== null) assert.ok(Number.isInteger(length) && length >= 0, `length ${length}`);
      }
      const response = parseResponseHead(input);
      if (response) assert.ok(response.status >= 0 && response.status <= 999);
    }
    const ms = performance.now() - started;
    console.log(`# ${HTTP_INPUTS} heads in ${ms.toFixed(0)} ms (${parsed} parsed as requests)`);
    assert.ok(parsed > HTTP_INPUTS / 20, 'the mutations still reach the parser past the request line');
  });

  it(`record decoder: ${RECORD_INPUTS.toLocaleString('en')} mutated loader frames, only RecordDecodeError, sane fields`, () => {
    const rand = prng(SEED ^ 0xdead);
    const stream = readFileSync(new URL('../fixtures/loader-stream.bin', import.meta.url));
    const frames: Buffer[] = [];
    for (let pos = 0; pos + 4 <= stream.length; ) {
      const len = stream.readUInt32LE(pos);
      frames.push(stream.subarray(pos + 4, pos + 4 + len));
      pos += 4 + len;
    }
    assert.ok(frames.length > 3);
    let decoded = 0;
    for (let n = 0; n < RECORD_INPUTS; n++) {
      const frame = mutate(frames[rand() % frames.length]!, rand);
      let rec;
      try {
        rec = decodeRecord(frame);
      } catch (e) {
        if (e instanceof RecordDecodeError) continue;
        throw e;
      }
      decoded++;
      switch (rec.kind) {
        case 'request':
        case 'dependency':
          for (const v of [rec.connId, rec.seq, rec.bytesSent, rec.bytesReceived, rec.localPort, rec.remotePort]) {
            assert.ok(Number.isFinite(v) && v >= 0, `${rec.kind} field ${v}`);
          }
          break;
        case 'data':
          assert.ok(rec.bytes.length <= frame.length);
          break;
        case 'stats':
          for (const v of Object.values(rec.kernel)) assert.ok(Number.isFinite(v) && v >= 0);
          break;
        case 'loader_info':
          assert.equal(typeof rec.info, 'object');
      }
    }
    assert.ok(decoded > RECORD_INPUTS / 10, `${decoded} decoded`);
  });
});
