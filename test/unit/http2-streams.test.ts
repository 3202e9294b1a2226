/**
 * The HTTP/2 stream assembler on byte vectors recorded from real peers (test/fixtures/http2/,
 * made by test/http2/record-fixtures.ts): each stream's method, path, status, selected
 * headers, gRPC outcome and byte counts against what the peers reported and against a plain
 * whole-buffer frame walk; the same under other chunkings, partial captures and a capture
 * that joins mid-way.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Http2Connection, senderOf, type Http2StreamRecord } from '../../src/http2/streams.ts';
import { loadFixtures, referenceWalk, type Chunk, type Http2Fixture, type PeerStream } from '../http2/fixture.ts';
import { asCaptured, perFrame, rechunk, replay, splitUpgrade, truncate, type CapturedChunk } from '../http2/replay.ts';
import { prng } from '../harness/prng.ts';

const FIXTURES = loadFixtures();

/** The fixture's chunks ready to feed, and the connection options its start needs. */
function prepared(name: string) {
  const { fixture, chunks } = FIXTURES.get(name)!;
  if (fixture.start !== 'upgrade') return { fixture, chunks, options: {}, skip: { client: 0, server: 0 } };
  const { upgrade, rest } = splitUpgrade(chunks);
  return { fixture, chunks: rest, options: { upgrade }, skip: { client: 0, server: 0 } };
}

function recordFor(records: Http2StreamRecord[], peer: PeerStream): Http2StreamRecord {
  const found = records.filter((r) => (peer.streamId !== null ? r.streamId === peer.streamId : r.requestHeaders.get('x-correlation-id') === peer.key));
  assert.equal(found.length, 1, `one record for stream ${peer.streamId ?? peer.key}`);
  return found[0]!;
}

/** Every stream as the peers reported it, bytes as the reference walk counts them. */
function assertMatchesPeers(fixture: Http2Fixture, chunks: readonly Chunk[], records: Http2StreamRecord[], opts: { bytes: boolean; upgrade?: boolean }) {
  const reference = referenceWalk(chunks, 0, 0);
  assert.equal(records.length, fixture.streams.length, 'one record per stream');
  for (const peer of fixture.streams) {
    const r = recordFor(records, peer);
    const what = `${fixture.name} stream ${r.streamId}`;
    assert.equal(r.method, peer.method, `${what} method`);
    assert.equal(r.path, peer.path, `${what} path`);
    if (peer.authority !== null) assert.equal(r.authority, peer.authority, `${what} authority`);
    assert.equal(r.status, peer.status, `${what} status`);
    assert.equal(r.end, peer.reset ? 'reset' : 'complete', `${what} end`);
    for (const [name, value] of Object.entries(peer.headers)) assert.equal(r.requestHeaders.get(name), value, `${what} ${name}`);
    assert.equal(r.startMissed, false);
    assert.equal(r.requestHeadersDecoded, 'full', `${what} request headers decoded`);
    if (r.status !== null) assert.equal(r.responseHeadersDecoded, 'full', `${what} response headers decoded`);
    if (peer.grpc) {
      assert.ok(r.grpc, `${what} is gRPC`);
      assert.equal(r.grpc.service, 'demo.v1.Items');
      assert.equal(r.grpc.method, peer.path!.split('/')[2]);
      assert.equal(r.grpc.status, peer.grpc.status, `${what} grpc-status`);
      // grpc-message is percent-encoded on the wire (gRPC spec); the record keeps it as sent.
      // (On success the client reports no message; grpc-js servers send "OK".)
      if (peer.grpc.status !== 0) assert.equal(r.grpc.message === null ? null : decodeURIComponent(r.grpc.message), peer.grpc.message, `${what} grpc-message`);
    } else {
      assert.equal(r.grpc, null);
    }
    assert.ok(r.endTime >= r.startTime, `${what} times`);
    if (!opts.bytes) continue;
    const ref = reference.get(r.streamId)!;
    const upgradeBytes = opts.upgrade && r.streamId === 1;
    if (!upgradeBytes) {
      assert.ok(ref, `${what} in the reference walk`);
      assert.equal(r.requestBytes, ref.requestBytes, `${what} request bytes`);
      assert.equal(r.responseBytes, ref.responseBytes, `${what} response bytes`);
      // The reference walk agrees with the peers on the bodies.
      if (peer.requestBodyBytes !== null) assert.equal(ref.requestData, peer.requestBodyBytes, `${what} request body`);
      if (peer.responseBodyBytes !== null && !peer.reset) assert.equal(ref.responseData, peer.responseBodyBytes, `${what} response body`);
    }
  }
}

/** Every fed byte is somewhere: preface, connection frames, untracked frames or stream records. */
function assertAccounting(result: ReturnType<typeof replay>, fed: readonly CapturedChunk[]) {
  for (const sender of ['client', 'server'] as const) {
    const a = result.connection.accounting(sender);
    const total = fed.filter((c) => c.from === sender).reduce((s, c) => s + c.total, 0);
    assert.equal(a.fed, total, `${sender} fed`);
    assert.equal(a.preface + a.connectionFrames + a.untrackedFrames + a.streamFrames + a.pending + a.afterDesync + a.inGaps, total, `${sender} accounted`);
    const inRecords = result.records.reduce((s, r) => s + (sender === 'client' ? r.requestBytes : r.responseBytes), 0);
    assert.equal(inRecords, a.streamFrames, `${sender} stream bytes`);
  }
}

describe('HTTP/2 streams from recorded peers', () => {
  for (const name of FIXTURES.keys()) {
    it(`${name}: ${FIXTURES.get(name)!.fixture.description}`, () => {
      const { fixture, chunks, options } = prepared(name);
      const fed = asCaptured(chunks);
      const result = replay(fed, options);
      assert.equal(result.connection.desyncReason, null);
      assert.equal(result.counters.hpackDesyncs, 0);
      assertMatchesPeers(fixture, chunks, result.records, { bytes: true, upgrade: fixture.start === 'upgrade' });
      if (fixture.start !== 'upgrade') assertAccounting(result, fed);
    });
  }

  it('the same records under random re-chunking (frames and headers cut anywhere)', () => {
    const rand = prng(0x4832);
    for (const name of FIXTURES.keys()) {
      const { fixture, chunks, options } = prepared(name);
      for (const max of [1, 7, 100, 5000]) {
        if (max === 1 && name === 'multiplexed') continue; // a million one-byte feeds: slow, adds nothing
        const fed = rechunk(chunks, rand, max);
        const result = replay(fed, options);
        assert.equal(result.connection.desyncReason, null, `${name} max ${max}`);
        assertMatchesPeers(fixture, chunks, result.records, { bytes: true, upgrade: fixture.start === 'upgrade' });
        if (fixture.start !== 'upgrade') assertAccounting(result, fed);
      }
    }
  });

  it('the fixtures hold what they claim: multiplexing, CONTINUATION, RST_STREAM both ways, trailers, Huffman, table size updates', () => {
    const frameTypes = (name: string) => new Set(perFrame(FIXTURES.get(name)!.chunks).filter((c) => c.bytes.length >= 9).map((c) => `${c.from}:${c.bytes[3]}`));
    assert.ok(frameTypes('continuation').has('client:9') && frameTypes('continuation').has('server:9'), 'CONTINUATION both ways');
    assert.ok(frameTypes('reset').has('client:3') && frameTypes('reset').has('server:3'), 'RST_STREAM both ways');
    // Multiplexed: some chunk holds frames of several streams, and stream lifetimes overlap.
    const { records } = replay(asCaptured(FIXTURES.get('multiplexed')!.chunks));
    const overlapping = records.filter((r) => records.some((o) => o !== r && o.startTime < r.endTime && r.startTime < o.endTime));
    assert.ok(overlapping.length > 50, `${overlapping.length} overlapping streams`);
    const byTime = perFrame(FIXTURES.get('multiplexed')!.chunks).filter((c) => c.from === 'server' && c.bytes[3] === 0);
    const order = byTime.map((c) => c.bytes.readUInt32BE(5));
    assert.ok(order.some((id, i) => i > 1 && id !== order[i - 1] && order.slice(0, i - 1).includes(id)), 'DATA frames of streams interleave');
  });

  it('one frame per chunk with only a prefix captured: bytes stay exact, no header value is wrong', () => {
    for (const name of FIXTURES.keys()) {
      const { fixture, chunks, options } = prepared(name);
      for (const keep of [9, 10, 20, 64, 300]) {
        const fed = truncate(perFrame(chunks), keep);
        const result = replay(fed, options);
        assert.equal(result.connection.desyncReason, null, `${name} keep ${keep}`);
        // A cut block leaves the table unknown; a later reference into it stops decoding for the connection, counted once.
        assert.equal(result.counters.hpackDesyncs, result.connection.hpackError === null ? 0 : 1, `${name} keep ${keep}`);
        if (result.connection.hpackError !== null) assert.equal(result.connection.hpackError, 'dynamic-table-unknown', `${name} keep ${keep}: only the unknown table, no malformed block`);
        if (fixture.start !== 'upgrade') assertAccounting(result, fed);
        const reference = referenceWalk(chunks, 0, 0);
        assert.equal(result.records.length, fixture.streams.length, `${name} keep ${keep}`);
        for (const r of result.records) {
          const ref = reference.get(r.streamId);
          // (Only the upgraded stream 1 opened outside HTTP/2 frames.)
          if (ref === undefined) assert.equal(r.streamId === 1 && fixture.start === 'upgrade', true);
          else {
            assert.equal(r.requestBytes, ref.requestBytes);
            assert.equal(r.responseBytes, ref.responseBytes);
          }
          // Known or null, never wrong. (gRPC peers are known by correlation id, which a cut block may hide.)
          const peer = fixture.streams.find((p) => p.streamId === r.streamId);
          const candidates = peer ? [peer] : fixture.streams;
          const what = `${name} keep ${keep} stream ${r.streamId}`;
          if (r.method !== null) assert.ok(candidates.some((p) => p.method === r.method), `${what} method ${r.method}`);
          if (r.path !== null) assert.ok(candidates.some((p) => p.path === r.path), `${what} path ${r.path}`);
          if (r.status !== null) assert.ok(candidates.some((p) => p.status === r.status), `${what} status ${r.status}`);
          if (peer) assert.equal(r.end, peer.reset ? 'reset' : 'complete');
          else assert.equal(r.end, 'complete');
        }
      }
    }
  });

  it('a capture cut inside a frame header desyncs the connection, counted, with every byte accounted', () => {
    const { chunks } = prepared('basic');
    const fed = truncate(asCaptured(chunks), 40);
    const result = replay(fed);
    assert.equal(result.connection.desyncReason, 'capture-gap');
    assert.equal(result.counters.frameDesyncs, 1);
    assert.ok(result.records.every((r) => r.end === 'desync' || r.end === 'complete'));
    assertAccounting(result, fed);
  });

  it('joined mid-way: streams and bytes counted, fields known only when decodable without the missed table', () => {
    for (const name of ['multiplexed', 'dynamic-table', 'grpc']) {
      const { fixture, chunks } = prepared(name);
      const frames = perFrame(chunks);
      // Join after a third of each direction's frames (and past the preface).
      for (const fraction of [0.2, 0.5]) {
        const from = { client: Math.floor(frames.filter((c) => c.from === 'client').length * fraction), server: Math.floor(frames.filter((c) => c.from === 'server').length * fraction) };
        const seen = { client: 0, server: 0 };
        const fed = frames.filter((c) => seen[c.from]++ >= from[c.from]);
        const result = replay(fed, { start: 'midway' });
        assert.equal(result.connection.desyncReason, null, `${name} ${fraction}`);
        assertAccounting(result, fed);
        assert.ok(result.records.length > 0);
        if (name === 'multiplexed') assert.ok(result.records.some((r) => r.startMissed), `${name}: some streams began before the capture`);
        for (const r of result.records) {
          const peer = fixture.streams.find((p) => (p.streamId !== null ? p.streamId === r.streamId : p.key === r.requestHeaders.get('x-correlation-id')));
          if (r.method !== null && peer) assert.equal(r.method, peer.method);
          if (r.path !== null && peer) assert.equal(r.path, peer.path);
          if (r.status !== null && peer) assert.equal(r.status, peer.status);
          if (peer === undefined) assert.equal(r.requestHeadersDecoded === 'full', false, 'an unidentified stream was not fully decoded');
        }
        // The first reference into the table the join missed stops decoding for the connection:
        // counted once, and every stream opened from then on has nothing decoded.
        assert.equal(result.counters.hpackDesyncs, result.connection.hpackError === null ? 0 : 1);
        if (name === 'dynamic-table') assert.equal(result.connection.hpackError, 'dynamic-table-unknown', `${name} ${fraction}`);
        // Streams opened after the last one with anything decoded: no status either (their
        // responses came after the stop too).
        const lastDecoded = Math.max(0, ...result.records.filter((r) => r.requestHeadersDecoded !== 'none').map((r) => r.streamId));
        const after = result.records.filter((r) => r.streamId > lastDecoded);
        if (result.connection.hpackError !== null) for (const r of after) assert.deepEqual([r.method, r.path, r.status], [null, null, null], `${name} ${fraction} stream ${r.streamId} after the desync`);
        console.log(`# ${name} joined at ${fraction}: ${result.records.length} streams, hpack ${result.connection.hpackError ?? 'in sync'}, ${after.length} streams after the last decoded one (${lastDecoded})`);
      }
    }
  });

  it('the client side (an outbound call): the same records from the calling process\'s reads and writes', () => {
    const { fixture, chunks } = prepared('grpc');
    // As a capture inside the client process sees it: its writes, then its reads.
    const asClientProcess = chunks.map((c) => ({ direction: c.from === 'client' ? ('write' as const) : ('read' as const), t: c.t, bytes: c.bytes }));
    const connection = new Http2Connection({ start: 'preface', selectedHeaders: ['x-correlation-id', 'traceparent'] });
    const records: Http2StreamRecord[] = [];
    for (const c of asClientProcess) records.push(...connection.feed(senderOf('client', c.direction), c.bytes, c.t));
    records.push(...connection.close(asClientProcess.at(-1)!.t));
    assertMatchesPeers(fixture, chunks, records, { bytes: true });
    assert.equal(senderOf('server', 'read'), 'client');
    assert.equal(senderOf('server', 'write'), 'server');
    assert.equal(senderOf('client', 'read'), 'server');
  });
});
