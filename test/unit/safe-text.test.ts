/**
 * Issue 13, finding 7: UTF-8 in paths and header values, control characters escaped,
 * request targets with a bare CR or LF refused, the CLI's input escaped; and the process
 * cache keyed by start time (finding 8).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ProcessInfoCache, readStartTime } from '../../src/enrich/process-info.ts';
import { HeaderSelection, parseRequestHead } from '../../src/http/parse.ts';
import { decodeSafeText, escapeControls, escapeControlsDeep } from '../../src/http/safe-text.ts';

const decode = (bytes: number[] | string) => {
  const b = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : Buffer.from(bytes);
  return decodeSafeText(b, 0, b.length);
};

describe('decodeSafeText', () => {
  it('keeps valid UTF-8 as text', () => {
    assert.equal(decode('/café/ü'), '/café/ü');
    assert.equal(decode('/日本/😀'), '/日本/😀');
    assert.equal(decode('/plain/ascii?x=1'), '/plain/ascii?x=1');
  });

  it('escapes control characters (C0, DEL, C1) as %XX of their bytes', () => {
    assert.equal(decode('/a\x1b[2J\x07b'), '/a%1B[2J%07b');
    assert.equal(decode('x\ty\r\nz\x7f'), 'x%09y%0D%0Az%7F');
    assert.equal(decode('a\u0085b\u009bc'), 'a%C2%85b%C2%9Bc');
  });

  it('escapes bytes that are not UTF-8: Latin-1, overlongs, surrogates, truncated sequences, > U+10FFFF', () => {
    assert.equal(decode([0x2f, 0x63, 0x61, 0x66, 0xe9]), '/caf%E9');
    assert.equal(decode([0xc0, 0xaf]), '%C0%AF');
    assert.equal(decode([0xe0, 0x80, 0xaf]), '%E0%80%AF');
    assert.equal(decode([0xed, 0xa0, 0x80]), '%ED%A0%80');
    assert.equal(decode([0xe2, 0x82]), '%E2%82');
    assert.equal(decode([0xf4, 0x90, 0x80, 0x80]), '%F4%90%80%80');
    assert.equal(decode([0xff, 0x41]), '%FFA');
  });

  it('escapeControls / escapeControlsDeep for strings already decoded', () => {
    assert.equal(escapeControls('ok'), 'ok');
    assert.equal(escapeControls('\x1b]0;owned\x07'), '%1B]0;owned%07');
    assert.deepEqual(escapeControlsDeep({ a: ['x\x1b', { b: 'é\n' }], n: 3, z: null }), { a: ['x%1B', { b: 'é%0A' }], n: 3, z: null });
  });
});

describe('request heads with bad bytes', () => {
  const wanted = new HeaderSelection(['x-correlation-id', 'user-agent']);

  it('UTF-8 paths and header values are decoded as UTF-8, not Latin-1', () => {
    const h = parseRequestHead(Buffer.from('GET /café/ü?q=é HTTP/1.1\r\nX-Correlation-ID: ünï\r\n\r\n', 'utf8'), wanted)!;
    assert.equal(h.path, '/café/ü');
    assert.equal(h.query, 'q=é');
    assert.equal(h.headers.get('x-correlation-id'), 'ünï');
  });

  it('a target with a bare LF or CR is not HTTP', () => {
    assert.equal(parseRequestHead(Buffer.from('GET /a\nb HTTP/1.1\r\n\r\n', 'latin1')), null);
    assert.equal(parseRequestHead(Buffer.from('GET /a\rb HTTP/1.1\r\n\r\n', 'latin1')), null);
    assert.equal(parseRequestHead(Buffer.from('GET /a\n HTTP/1.1\r\n\r\n', 'latin1')), null);
  });

  it('control characters and invalid bytes in paths and header values are escaped', () => {
    const raw = Buffer.concat([
      Buffer.from('GET /x\x1b[2J\x07/', 'latin1'),
      Buffer.from([0xe9, 0xff]),
      Buffer.from(' HTTP/1.1\r\nUser-Agent: \x1b]0;title\x07evil\r\nX-Correlation-ID: id\x00\x01\r\n\r\n', 'latin1'),
    ]);
    const h = parseRequestHead(raw, wanted)!;
    assert.equal(h.path, '/x%1B[2J%07/%E9%FF');
    assert.equal(h.headers.get('user-agent'), '%1B]0;title%07evil');
    assert.equal(h.headers.get('x-correlation-id'), 'id%00%01');
  });
});

describe('process cache keyed by pid and start time', () => {
  it('reads field 22 of /proc/<pid>/stat', () => {
    const fromPs = /^\S+ \(.*\) (.*)$/s.exec(readFileSync(`/proc/${process.pid}/stat`, 'utf8'))![1]!.split(' ')[19];
    assert.equal(readStartTime(process.pid), fromPs);
    assert.equal(readStartTime(2 ** 30), null);
  });

  it('a pid with a new start time is looked up again; the same start time is served from the cache', () => {
    let start = '100';
    const cache = new ProcessInfoCache(null, () => start);
    const first = cache.get(process.pid, 'node', 0);
    assert.equal(cache.get(process.pid, 'node', 500), first);
    assert.equal(cache.get(process.pid, 'node', 1_500), first, 'same start time after the check');
    start = '200';
    const reused = cache.get(process.pid, 'node', 2_600);
    assert.notEqual(reused, first, 'a reused pid is a new process');
  });
});
