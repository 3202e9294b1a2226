import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HeaderSelection, parseRequestHead, parseResponseHead } from '../../src/http/parse.ts';
import { CorrelationExtractor } from '../../src/http/correlation.ts';
import { parseTraceParent } from '../../src/http/traceparent.ts';
import { routeTemplate } from '../../src/http/route.ts';

const b = (s: string) => Buffer.from(s, 'latin1');

describe('parseRequestHead', () => {
  it('parses request line, path, query and lowercased headers', () => {
    const h = parseRequestHead(b('POST /a/b?x=1&y=2 HTTP/1.1\r\nHost: h\r\nX-Request-ID: abc\r\nX-Request-Id: second\r\n\r\nbody'), new HeaderSelection(['x-request-id']));
    assert.ok(h);
    assert.equal(h.method, 'POST');
    assert.equal(h.path, '/a/b');
    assert.equal(h.query, 'x=1&y=2');
    assert.equal(h.version, '1.1');
    assert.equal(h.headers.get('x-request-id'), 'abc');
    assert.equal(h.complete, true);
  });

  it('keeps the headers of a head cut off by the capture size, minus the partial line', () => {
    const h = parseRequestHead(b('GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: partial-val'), new HeaderSelection(['a', 'b', 'c']));
    assert.ok(h);
    assert.equal(h.complete, false);
    assert.equal(h.headers.get('b'), '2');
    assert.equal(h.headers.has('c'), false);
  });

  it('refuses non-HTTP bytes and HTTP/2 prefaces', () => {
    for (const s of ['', '\x16\x03\x01\x02\x00', 'SSH-2.0-OpenSSH_9.2\r\n', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'get / HTTP/1.1\r\n', 'GET  / HTTP/1.1\r\n', 'GET / HTTP/1.1']) {
      const h = parseRequestHead(b(s));
      if (s === 'GET / HTTP/1.1') assert.ok(h, 'a bare request line is HTTP');
      else assert.equal(h, null, JSON.stringify(s));
    }
  });

  it('survives huge and binary garbage', () => {
    assert.equal(parseRequestHead(Buffer.alloc(4096, 0xff)), null);
    assert.equal(parseRequestHead(b('GET ' + 'a'.repeat(10000))), null);
    assert.equal(parseRequestHead(b(`GET /${'a'.repeat(9000)} HTTP/1.1`)), null, 'no CRLF and too long for a request line');
    assert.equal(parseRequestHead(b(`GET /${'a'.repeat(9000)} HTTP/1.1\r\n`))?.path.length, 9001);
    const long = parseRequestHead(b(`GET / HTTP/1.1\r\nX-Request-Id: ${'v'.repeat(5000)}\r\n\r\n`), new HeaderSelection(['x-request-id']));
    assert.equal(long?.headers.get('x-request-id')?.length, 5000);
  });

  it('accepts methods of up to 20 letters and dashes', () => {
    assert.equal(parseRequestHead(b('M-SEARCH * HTTP/1.1\r\n\r\n'))?.method, 'M-SEARCH');
    assert.equal(parseRequestHead(b(`${'A'.repeat(20)} / HTTP/1.0\r\n`))?.version, '1.0');
    assert.equal(parseRequestHead(b(`${'A'.repeat(21)} / HTTP/1.1\r\n`)), null);
    assert.equal(parseRequestHead(b('-GET / HTTP/1.1\r\n')), null);
  });

  it('reads only the selected headers: names ignoring case and spaces, values trimmed, first wins', () => {
    const wanted = new HeaderSelection(['X-Request-Id', 'host', 'empty']);
    const h = parseRequestHead(
      b('GET / HTTP/1.1\r\nHOST :  h:80 \r\nCookie: s=secret\r\nAuthorization: Bearer t\r\n x-request-id\t:\tr1\r\nEmpty:\r\nEmpty: late\r\nHost: second\r\n\r\n'),
      wanted,
    );
    assert.ok(h);
    assert.deepEqual([...h.headers], [['host', 'h:80'], ['x-request-id', 'r1'], ['empty', '']]);
    assert.equal(parseRequestHead(b('GET / HTTP/1.1\r\nCookie: s\r\n\r\n'))?.headers.size, 0, 'nothing selected, nothing read');
    // Latin-1 names lowercase as String.prototype.toLowerCase does; names beyond Latin-1 never match.
    const latin1 = parseRequestHead(b('GET / HTTP/1.1\r\nX-CAF\xc9: 1\r\n\r\n'), new HeaderSelection(['x-caf\xe9', '\u2603']));
    assert.equal(latin1?.headers.get('x-caf\xe9'), '1');
  });

  it('handles absolute-form targets and fragments', () => {
    const target = (t: string) => {
      const h = parseRequestHead(b(`GET ${t} HTTP/1.1\r\n\r\n`));
      return { path: h?.path, query: h?.query };
    };
    assert.deepEqual(target('http://example.com:80/p/q?z=1#frag'), { path: '/p/q', query: 'z=1' });
    assert.deepEqual(target('http://example.com'), { path: '/', query: null });
    assert.deepEqual(target('/x#f'), { path: '/x', query: null });
  });
});

describe('parseResponseHead', () => {
  it('reads the status', () => {
    assert.equal(parseResponseHead(b('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n'))?.status, 404);
    assert.equal(parseResponseHead(b('HTTP/1.0 200\r\n'))?.status, 200);
    assert.equal(parseResponseHead(b('SSH-2.0\r\n')), null);
    assert.deepEqual(parseResponseHead(b('HTTP/1.0 503')), { status: 503, version: '1.0' });
    for (const s of ['HTTP/1.1 2000', 'HTTP/1.1 20', 'HTTP/1.1 200\r', 'HTTP/2 200 OK', 'http/1.1 200 OK', 'HTTP/1.1  200']) {
      assert.equal(parseResponseHead(b(s)), null, JSON.stringify(s));
    }
  });
});

describe('CorrelationExtractor', () => {
  const headers = (o: Record<string, string>) => new Map(Object.entries(o));

  it('checks custom headers first, then the 7 built-ins in order', () => {
    const x = new CorrelationExtractor(['X-Tenant-Req']);
    assert.equal(x.extract(headers({ 'x-request-id': 'r', 'x-tenant-req': 't' })), 't');
    assert.equal(x.extract(headers({ 'x-request-id': 'r', 'x-correlation-id': 'c' })), 'c');
    for (const name of ['x-trace-id', 'x-amzn-trace-id', 'request-id', 'correlation-id']) {
      assert.equal(x.extract(headers({ [name]: `v-${name}` })), `v-${name}`);
    }
    assert.equal(x.extract(headers({})), null);
  });

  it('uses the trace id of a valid traceparent', () => {
    const x = new CorrelationExtractor([]);
    assert.equal(x.extract(headers({ traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' })), '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.equal(x.extract(headers({ traceparent: 'garbage' })), null);
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    assert.equal(x.extract(headers({ traceparent }), parseTraceParent(traceparent)), '4bf92f3577b34da6a3ce929d0e0e4736', 'parsed by the caller');
    assert.equal(x.extract(headers({ traceparent: 'garbage', 'request-id': 'r' }), null), 'r');
  });

  it('skips empty values and bounds long ones', () => {
    const x = new CorrelationExtractor([]);
    assert.equal(x.extract(headers({ 'x-correlation-id': '', 'x-request-id': 'r' })), 'r');
    assert.equal(x.extract(headers({ 'x-request-id': 'y'.repeat(1000) }))?.length, 256);
  });
});

describe('parseTraceParent', () => {
  it('accepts version 00 with non-zero ids', () => {
    assert.deepEqual(parseTraceParent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'), {
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      parentSpanId: '00f067aa0ba902b7',
      sampled: true,
    });
    assert.equal(parseTraceParent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00')?.sampled, false);
    assert.equal(parseTraceParent(' 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0b ')?.sampled, true);
    assert.equal(parseTraceParent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0a')?.sampled, false);
  });

  it('refuses all-zero ids, other versions, uppercase and junk', () => {
    for (const v of [
      `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`,
      `00-4bf92f3577b34da6a3ce929d0e0e4736-${'0'.repeat(16)}-01`,
      'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01',
      '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7',
      '',
      undefined,
    ]) {
      assert.equal(parseTraceParent(v), null, String(v));
    }
  });
});

describe('routeTemplate', () => {
  it('replaces id-like segments', () => {
    assert.equal(routeTemplate('/users/123/orders/9f8e7d6c5b4a3f2e1d0c'), '/users/{id}/orders/{id}');
    assert.equal(routeTemplate('/items/550e8400-e29b-41d4-a716-446655440000'), '/items/{id}');
    assert.equal(routeTemplate('/static/app.js'), '/static/app.js');
    assert.equal(routeTemplate('/'), '/');
    assert.equal(routeTemplate('/a/b/c/d/e/f/g/h/i/j'), '/a/b/c/d/e/f/g/h/*');
    assert.equal(routeTemplate('/a/b/c/d/e/f/g/h'), '/a/b/c/d/e/f/g/h');
    assert.equal(routeTemplate('/items/ABCDEFAB-CDEF-ABCD-EFAB-CDEFABCDEFAB/x/'), '/items/{id}/x/');
    assert.equal(routeTemplate('/t/abc_DEF-ghi1jklm/deadbeefcafe/deadbeefcaf'), '/t/{id}/{id}/deadbeefcaf');
    assert.equal(routeTemplate('/t/abc_DEF-ghi-jklm'), '/t/abc_DEF-ghi-jklm');
    assert.equal(routeTemplate('*'), '*');
    assert.equal(routeTemplate('example.com:443'), '/');
  });
});
