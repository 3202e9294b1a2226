/**
 * A gap in the capture (the kernel's full ring buffer refused some records of a direction; the
 * kernel walked on and says so on the next one, PC_H2F_GAP): the stream assembler resumes at
 * the next frame instead of losing the connection. Recorded fixtures, frames dropped as the
 * kernel drops them; every stream is a record or a client stream id the gap went past, and a
 * stream none of whose frames were lost keeps its exact bytes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProcessInfoCache } from '../../src/enrich/process-info.ts';
import { CorrelationExtractor } from '../../src/http/correlation.ts';
import { newHttp2Counters } from '../../src/http2/counters.ts';
import { CLIENT_PREFACE } from '../../src/http2/frames.ts';
import { Http2Connection, type Http2Sender, type Http2StreamRecord } from '../../src/http2/streams.ts';
import { buildH2Request, type H2ConnMeta } from '../../src/pipeline/h2-builder.ts';
import { loadFixtures, referenceWalk } from '../http2/fixture.ts';
import { h2Frame } from '../http2/frame-bytes.ts';
import { perFrame, type CapturedChunk } from '../http2/replay.ts';

const FIXTURES = loadFixtures();

type Fed = CapturedChunk & { gap?: boolean; otherSideGap?: boolean };

function streamOf(c: CapturedChunk): number | null {
  return c.total >= 9 && c.bytes.length >= 9 ? c.bytes.readUInt32BE(5) & 0x7fff_ffff : null;
}

/**
 * The fixture's frames with those of `senders` in [from, to) lost; each sender's next frame
 * says so. `dark`: that next frame's start was in the lost records too, so it comes as
 * uncaptured bytes only (the kernel skips the rest of a frame whose start it could not send).
 */
function withGap(frames: CapturedChunk[], from: number, to: number, senders: Http2Sender[], dark: boolean): { fed: Fed[]; hit: Set<number> } {
  const hit = new Set<number>();
  const fed: Fed[] = [];
  const pending = new Set(senders);
  // As the kernel says it: each direction's next record after another direction's loss.
  const toldOther = new Set<Http2Sender>();
  frames.forEach((frame, i) => {
    let c: Fed = frame;
    const other: Http2Sender = c.from === 'client' ? 'server' : 'client';
    if (i >= from && senders.includes(other) && !toldOther.has(c.from) && !(i < to && pending.has(c.from))) {
      toldOther.add(c.from);
      c = { ...c, otherSideGap: true };
    }
    const lost = i >= from && i < to && pending.has(c.from);
    const id = streamOf(c);
    if (lost) {
      if (id) hit.add(id);
      return;
    }
    if (i >= to && pending.has(c.from)) {
      pending.delete(c.from);
      if (dark) {
        if (id) hit.add(id);
        fed.push({ ...c, bytes: c.bytes.subarray(0, 0), gap: true });
        return;
      }
      fed.push({ ...c, gap: true });
      return;
    }
    fed.push(c);
  });
  return { fed, hit };
}

function run(name: string, from: number, to: number, senders: Http2Sender[], dark: boolean, hpackLost: boolean) {
  const { fixture, chunks } = FIXTURES.get(name)!;
  const frames = perFrame(chunks);
  const { fed, hit } = withGap(frames, from, to, senders, dark);
  const counters = newHttp2Counters();
  const conn = new Http2Connection({ start: 'preface', counters, selectedHeaders: ['x-correlation-id'] });
  const records: Http2StreamRecord[] = [];
  let t = 0;
  let gapAt = Infinity;
  for (const c of fed) {
    if (c.otherSideGap) conn.otherSideGap();
    if (c.gap) {
      conn.gap(c.from, hpackLost);
      gapAt = Math.min(gapAt, t + 1);
    }
    records.push(...conn.feed(c.from, c.bytes, ++t, c.total));
  }
  records.push(...conn.close(++t));
  const reference = referenceWalk(chunks, 0, 0);
  const what = `${name}, frames ${from}-${to} of ${senders.join('+')} lost${dark ? ', the next one dark' : ''}`;

  assert.equal(conn.desynced, false, `${what}: no desync`);
  assert.equal(counters.gaps, senders.length, what);
  // Conservation: every stream of the fixture is a record or an id the gap went past.
  assert.equal(records.length + counters.streamIdsSkippedInGaps, fixture.streams.length, `${what}: records + skipped ids`);
  assert.equal(new Set(records.map((r) => r.streamId)).size, records.length, `${what}: one record per stream`);
  let exact = 0;
  for (const r of records) {
    const ref = reference.get(r.streamId)!;
    const bytesExact = r.requestBytes === ref.requestBytes && r.responseBytes === ref.responseBytes;
    // A lost frame may not have counted (a client WINDOW_UPDATE after the stream's end).
    if (!bytesExact) {
      assert.ok(hit.has(r.streamId), `${what}: stream ${r.streamId} lost no frame, yet its bytes are ${r.requestBytes}/${r.responseBytes}, not ${ref.requestBytes}/${ref.responseBytes}`);
      assert.ok(r.framesMissed || r.startMissed, `${what}: stream ${r.streamId} lost frames and says so`);
      assert.ok(r.requestBytes <= ref.requestBytes && r.responseBytes <= ref.responseBytes, `${what}: stream ${r.streamId} bytes a lower bound`);
      continue;
    }
    if (hit.has(r.streamId)) continue;
    // None of its frames lost: exact, and it ended in view.
    if (ref.ended) assert.ok(r.end === 'complete' || r.end === 'reset', `${what}: stream ${r.streamId} ended ${r.end}`);
    exact++;
  }
  // Streams begun after an HPACK gap are not decoded (their table is unknown): counted with bytes.
  for (const r of records.filter((x) => x.startTime > gapAt)) {
    if (hpackLost) assert.equal(r.requestHeadersDecoded, 'none', `${what}: stream ${r.streamId} begun after the gap`);
  }
  assert.equal(counters.streamsGapped, records.filter((r) => r.framesMissed).length, what);
  assert.equal(conn.hpackError, hpackLost ? 'capture-gap' : null, what);
  for (const sender of ['client', 'server'] as const) {
    const a = conn.accounting(sender);
    assert.equal(a.preface + a.connectionFrames + a.untrackedFrames + a.streamFrames + a.pending + a.afterDesync + a.inGaps, a.fed, `${what}: ${sender} bytes accounted`);
  }
  return { records, exact, hit: hit.size, skipped: counters.streamIdsSkippedInGaps };
}

describe('HTTP/2 decoding across a gap in the capture', () => {
  for (const name of ['dynamic-table', 'multiplexed', 'grpc']) {
    const frames = perFrame(FIXTURES.get(name)!.chunks).length;
    for (const [senders, dark] of [[['client'], false], [['server'], false], [['client', 'server'], false], [['client'], true], [['server'], true]] as [Http2Sender[], boolean][]) {
      it(`${name}: ${senders.join(' and ')} frames lost mid-way${dark ? ', the next frame dark' : ''}: every stream a record or a skipped id, the untouched ones exact`, () => {
        const from = Math.floor(frames / 3);
        const to = Math.floor(frames / 2);
        const r = run(name, from, to, senders, dark, true);
        assert.ok(r.exact > 0 && r.hit > 0, `the gap hit some streams (${r.hit}) and spared others (${r.exact})`);
      });
    }
  }

  it('without header blocks in the gap, decoding goes on: streams after it keep their headers', () => {
    // Only DATA frames of the server lost: the table is untouched.
    const { chunks } = FIXTURES.get('grpc')!;
    const frames = perFrame(chunks);
    const i = frames.findIndex((c, k) => k > frames.length / 3 && c.from === 'server' && c.bytes[3] === 0);
    const r = run('grpc', i, i + 1, ['server'], false, false);
    const undecoded = r.records.filter((x) => !x.framesMissed && x.method === null);
    assert.deepEqual(undecoded.map((x) => x.streamId), [], 'every untouched stream decoded');
  });

  it('a gap that lasts until the close: the ids past the last stream opened are counted from the close record', () => {
    const { fixture, chunks } = FIXTURES.get('dynamic-table')!;
    const frames = perFrame(chunks);
    const cut = Math.floor(frames.length / 2);
    const counters = newHttp2Counters();
    const conn = new Http2Connection({ start: 'preface', counters });
    const records: Http2StreamRecord[] = [];
    let t = 0;
    for (const c of frames.slice(0, cut)) records.push(...conn.feed(c.from, c.bytes, ++t, c.total));
    // Everything after `cut` lost; the close record says so, with the highest client stream id.
    const maxId = Math.max(...frames.map((c) => streamOf(c) ?? 0).filter((id) => id % 2 === 1));
    conn.otherSideGap();
    records.push(...conn.close(++t, maxId));
    assert.equal(records.length + counters.streamIdsSkippedInGaps, fixture.streams.length, 'records + skipped ids');
    assert.ok(counters.streamIdsSkippedInGaps > 0);
  });
});

/**
 * Hand-built connections for the rule that ends streams a gap swallowed the end of
 * (streams.ts, GAP_SWEEP_FLOOR): unary calls (HEADERS with END_STREAM, answered by HEADERS
 * and DATA with END_STREAM), the server's answers to some lost in a gap.
 */
const [DATA, HEADERS, RST_STREAM, SETTINGS] = [0, 1, 3, 4];
const END_STREAM = 1;
const END_HEADERS = 4;
/** :method POST, :scheme http, :path / (static table only: decodable anywhere). */
const REQUEST_BLOCK = Buffer.from([0x83, 0x86, 0x84]);
/** :status 200. */
const RESPONSE_BLOCK = Buffer.from([0x88]);
const MAX_CONCURRENT_STREAMS = 0x3;

function settingsPayload(id: number, value: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUInt16BE(id, 0);
  b.writeUInt32BE(value, 2);
  return b;
}

function synthetic(opts: { serverSettings?: Buffer; midway?: boolean } = {}) {
  const counters = newHttp2Counters();
  const conn = new Http2Connection({ start: opts.midway ? 'midway' : 'preface', counters });
  const records: Http2StreamRecord[] = [];
  let t = 0;
  const feed = (from: Http2Sender, ...frames: Buffer[]): Http2StreamRecord[] => {
    const done = conn.feed(from, Buffer.concat(frames), ++t);
    records.push(...done);
    return [...done];
  };
  if (!opts.midway) {
    feed('client', CLIENT_PREFACE, h2Frame(SETTINGS, 0, 0));
    feed('server', h2Frame(SETTINGS, 0, 0, opts.serverSettings ?? Buffer.alloc(0)));
  }
  let next = 1;
  const open = (): number => {
    const id = next;
    next += 2;
    feed('client', h2Frame(HEADERS, END_HEADERS | END_STREAM, id, REQUEST_BLOCK));
    return id;
  };
  const respond = (id: number) => feed('server', h2Frame(HEADERS, END_HEADERS, id, RESPONSE_BLOCK), h2Frame(DATA, END_STREAM, id, 10));
  /** `n` unary calls one after another, each answered. */
  const calls = (n: number) => {
    for (let i = 0; i < n; i++) respond(open());
  };
  return { conn, counters, records, feed, open, respond, calls, now: () => t, skipTo: (id: number) => (next = id) };
}

const META: H2ConnMeta = {
  kind: 'h2_conn', flags: 0, pid: process.pid, tid: process.pid, connId: 1, cgroupId: 0, startNs: 0n, endNs: 0n, cpuNs: 0,
  bytesReceived: 0, bytesSent: 0, rssBytes: 0, seq: 0, family: 2, localPort: 50051, remotePort: 40000, reqCaptured: 0, respCaptured: 0, status: 0,
  localAddr: '127.0.0.1', remoteAddr: '127.0.0.1', comm: 'node', peerConnId: 0, cpuAfterResponseNs: 0, midway: false,
};
const BUILD_OPTIONS = { correlation: new CorrelationExtractor([]), processes: new ProcessInfoCache(), keepQuery: true, pods: null };

/** 150 calls in flight; the server's answers to the last 50 lost in a gap. Returns those 50, with when each was last seen. */
function swallowed(c: ReturnType<typeof synthetic>) {
  const inFlight: number[] = [];
  const seenAt = new Map<number, number>();
  for (let i = 0; i < 150; i++) {
    const id = c.open();
    inFlight.push(id);
    seenAt.set(id, c.now());
  }
  for (const id of inFlight.slice(0, 100)) c.respond(id);
  c.conn.gap('server', false);
  return { lost: inFlight.slice(100), seenAt };
}

function assertAccounted(conn: Http2Connection) {
  for (const sender of ['client', 'server'] as const) {
    const a = conn.accounting(sender);
    assert.equal(a.preface + a.connectionFrames + a.untrackedFrames + a.streamFrames + a.pending + a.afterDesync + a.inGaps, a.fed, `${sender} bytes accounted`);
  }
}

describe('HTTP/2 streams whose end a gap swallowed', () => {
  it('end as lost-in-gap once the client has opened 4 × the most streams seen open at once since the gap: counted, incomplete, at their last frame', () => {
    const c = synthetic();
    const { lost, seenAt } = swallowed(c);
    assert.equal(c.conn.openStreams, 50);
    // 150 open at once (none of them waiting out a gap then): 600 new streams are not enough.
    c.calls(600);
    assert.equal(c.conn.openStreams, 50, 'still open after 600 later calls');
    assert.equal(c.counters.streamsEndedInGaps, 0);
    const recordsBefore = c.records.length;
    c.calls(1);
    const ended = c.records.slice(recordsBefore).filter((r) => r.end === 'lost-in-gap');
    assert.deepEqual(ended.map((r) => r.streamId), lost, 'the 601st ends every swallowed stream, oldest first');
    assert.equal(c.conn.openStreams, 0);
    assert.equal(c.counters.streamsEndedInGaps, 50);
    assert.equal(c.counters.streamsGapped, 50);
    for (const r of ended) {
      assert.equal(r.framesMissed, true);
      assert.equal(r.endTime, seenAt.get(r.streamId), `stream ${r.streamId} ends at its last frame`);
      assert.equal(r.method, 'POST');
      assert.equal(r.status, null);
      const built = buildH2Request(META, r, 0n, { ns: 0, apportioned: false }, BUILD_OPTIONS, 0);
      assert.equal(built.captureIncomplete, true, 'incomplete');
      assert.equal(built.h2!.end, 'lost-in-gap');
      assert.equal(built.record.duration_ms, 0);
    }
    // Every other stream ended in view.
    assert.ok(c.records.filter((r) => r.end !== 'lost-in-gap').every((r) => r.end === 'complete'));
    assert.equal(c.records.length, 150 + 601);
    c.conn.close(c.now() + 1);
    assertAccounted(c.conn);
  });

  it('a stream with a frame after the gap is never ended by it; one quiet since the gap is, its end unknown', () => {
    const c = synthetic();
    // Two streaming calls: the server streams on both, then a gap.
    const [busy, quiet] = [c.open(), c.open()];
    c.feed('server', h2Frame(HEADERS, END_HEADERS, busy, RESPONSE_BLOCK), h2Frame(HEADERS, END_HEADERS, quiet, RESPONSE_BLOCK));
    c.feed('server', h2Frame(DATA, 0, quiet, 50));
    const quietLast = c.now();
    c.conn.gap('server', false);
    c.feed('server', h2Frame(DATA, 0, busy, 50));
    c.calls(2000);
    assert.deepEqual(c.records.filter((r) => r.end === 'lost-in-gap').map((r) => r.streamId), [quiet]);
    const q = c.records.find((r) => r.streamId === quiet)!;
    assert.equal(q.endTime, quietLast);
    assert.equal(c.conn.openStreams, 1, 'the busy stream is still open');
    // The busy one ends in view, reported as gapped.
    const done = c.respond(busy);
    assert.equal(done.length, 1);
    assert.equal(done[0]!.end, 'complete');
    assert.equal(done[0]!.framesMissed, true);
    assert.equal(c.counters.streamsEndedInGaps, 1);
  });

  it('not ended before the threshold: 400 later streams with few open at once (the floor, 100), and the server\'s SETTINGS_MAX_CONCURRENT_STREAMS when it sent one', () => {
    // Few at once: the floor holds, 4 × 100.
    const few = synthetic();
    const lostOne = few.open();
    few.calls(5);
    few.conn.gap('server', false);
    few.calls(400);
    assert.equal(few.conn.openStreams, 1, 'not after 400');
    few.calls(1);
    assert.equal(few.conn.openStreams, 0);
    assert.equal(few.records.find((r) => r.streamId === lostOne)!.end, 'lost-in-gap');

    // The server allows 250 at once: 1,000, whatever the high-water mark (150).
    const bounded = synthetic({ serverSettings: settingsPayload(MAX_CONCURRENT_STREAMS, 250) });
    swallowed(bounded);
    bounded.calls(1000);
    assert.equal(bounded.conn.openStreams, 50, 'not after 1,000');
    assert.equal(bounded.counters.streamsEndedInGaps, 0);
    bounded.calls(1);
    assert.equal(bounded.conn.openStreams, 0);
    assert.equal(bounded.counters.streamsEndedInGaps, 50);

    // An unbounded setting (beyond the open-stream bound) falls back to the high-water mark.
    const unbounded = synthetic({ serverSettings: settingsPayload(MAX_CONCURRENT_STREAMS, 0xffff_ffff) });
    swallowed(unbounded);
    unbounded.calls(601);
    assert.equal(unbounded.counters.streamsEndedInGaps, 50);
  });

  it('the streams waiting out a gap do not raise their own threshold: the high-water mark counts the others', () => {
    const c = synthetic();
    swallowed(c); // 150 open at once before the gap
    // Batches of 110 at once: 160 open with the 50 swallowed, 110 of them live.
    for (let batch = 0; batch < 5; batch++) {
      const ids = Array.from({ length: 110 }, () => c.open());
      for (const id of ids) c.respond(id);
    }
    c.calls(50);
    assert.equal(c.counters.streamsEndedInGaps, 0, '600 later streams: not yet');
    c.calls(1);
    assert.equal(c.counters.streamsEndedInGaps, 50, 'the 601st: 4 × 150, not 4 × 160');
  });

  it('a frame after its end: counted as a closed stream\'s, no second record (mid-way too, long after)', () => {
    const c = synthetic();
    const { lost } = swallowed(c);
    c.calls(601);
    assert.equal(c.counters.streamsEndedInGaps, 50);
    const streams = c.counters.streams;
    const untracked = c.conn.accounting('server').untrackedFrames;
    const late = c.respond(lost[0]!);
    const rst = c.feed('client', h2Frame(RST_STREAM, 0, lost[1]!, Buffer.alloc(4)));
    assert.deepEqual([...late, ...rst], [], 'no record');
    assert.equal(c.counters.streams, streams, 'no stream opened');
    assert.equal(c.conn.accounting('server').untrackedFrames, untracked + 9 + 1 + 9 + 10, 'counted untracked');
    const closing = c.conn.close(c.now() + 1);
    assert.deepEqual(closing, []);
    assert.equal(new Set(c.records.map((r) => r.streamId)).size, c.records.length, 'one record per stream');
    assertAccounted(c.conn);

    // Mid-way, a stream begun before the capture could pass for a new one once its id is no
    // longer among the closed ones remembered (4096): an ended-in-gap id never does.
    const m = synthetic({ midway: true });
    m.skipTo(3);
    m.feed('client', h2Frame(DATA, 0, 1, 20)); // stream 1 began before the capture
    m.calls(3);
    m.conn.gap('server', false);
    m.calls(5000);
    assert.equal(m.records.find((r) => r.streamId === 1)?.end, 'lost-in-gap');
    const after = m.records.length;
    m.feed('client', h2Frame(DATA, END_STREAM, 1, 20));
    m.feed('server', h2Frame(HEADERS, END_HEADERS, 1, RESPONSE_BLOCK), h2Frame(DATA, END_STREAM, 1, 10));
    assert.equal(m.records.length, after, 'no second record');
    assert.deepEqual(m.conn.close(m.now() + 1), []);
    assert.equal(m.records.filter((r) => r.streamId === 1).length, 1);
  });
});
