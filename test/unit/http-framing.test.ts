import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { indexOfCrlf, requestLength } from '../../src/http/framing.ts';

const b = (s: string) => Buffer.from(s, 'latin1');

describe('requestLength', () => {
  it('is the head alone without a body, and null while the head is incomplete', () => {
    const head = 'GET / HTTP/1.1\r\nHost: h\r\n\r\n';
    assert.equal(requestLength(b(head + 'GET /next HTTP/1.1\r\n')), head.length);
    assert.equal(requestLength(b('\r\n\r\n' + head)), 4 + head.length, 'leading empty lines count');
    assert.equal(requestLength(b('GET / HTTP/1.1\r\nHost: h\r\n')), null);
    assert.equal(requestLength(b('GET / HTTP/1.1')), null);
  });

  it('adds Content-Length, in any case, with spaces, even beyond the capture', () => {
    const head = 'POST / HTTP/1.1\r\ncontent-LENGTH:  5 \r\n\r\n';
    assert.equal(requestLength(b(head + 'helloGET')), head.length + 5);
    const big = 'POST / HTTP/1.1\r\nContent-Length: 100000\r\n\r\n';
    assert.equal(requestLength(b(big)), big.length + 100000);
    const huge = 'POST / HTTP/1.1\r\nContent-Length: 12345678901234567890\r\n\r\n';
    assert.equal(requestLength(b(huge)), huge.length + 12345678901234567890);
  });

  it('ignores malformed Content-Length lines, taking the first well-formed one', () => {
    for (const head of ['POST / HTTP/1.1\r\nContent-Length: 5x\r\n\r\n', 'POST / HTTP/1.1\r\n Content-Length: 5\r\n\r\n']) {
      assert.equal(requestLength(b(head)), head.length, JSON.stringify(head));
    }
    const empty = 'POST / HTTP/1.1\r\nContent-Length:\r\n\r\n';
    assert.equal(requestLength(b(empty + '7')), empty.length, 'the digits after the head are body');
    const twice = 'POST / HTTP/1.1\r\nContent-Length: x\r\nContent-Length: 3\r\n\r\n';
    assert.equal(requestLength(b(twice)), twice.length + 3);
    const conflicting = 'POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n';
    assert.equal(requestLength(b(conflicting)), conflicting.length + 3);
  });

  it('follows chunked framing to its last chunk and trailer', () => {
    const head = 'POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\nContent-Length: 3\r\n\r\n';
    const body = '5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n';
    assert.equal(requestLength(b(head + body + 'GET / HTTP/1.1\r\n')), head.length + body.length);
    assert.equal(requestLength(b(head + '5\r\nhel')), null, 'the end is not captured');
    assert.equal(requestLength(b(head + 'zz\r\n')), null);
    const gzip = 'POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n';
    assert.equal(requestLength(b(gzip + '5\r\nhello\r\n0\r\n\r\n')), gzip.length, 'not chunked');
  });
});

describe('indexOfCrlf', () => {
  it('finds the first CRLF, skipping lone CRs and LFs, on short and long lines', () => {
    for (const pad of [0, 1, 2, 5, 62, 63, 64, 65, 66, 100, 1000]) {
      const s = 'x'.repeat(pad) + '\r\n\rx\nx\r\n';
      assert.equal(indexOfCrlf(b(s), 0), pad, String(pad));
      assert.equal(indexOfCrlf(b(s), pad + 1), pad + 6);
      assert.equal(indexOfCrlf(b('x'.repeat(pad) + '\r'), 0), -1);
      assert.equal(indexOfCrlf(b('x'.repeat(pad) + '\n\r'), 0), -1);
    }
  });
});
