/**
 * A gap in the capture (the kernel's full ring buffer refused some records of a direction; the
 * kernel walked on and says so on the next one, PC_H2F_GAP): the stream assembler resumes at
 * the next frame instead of losing the connection. Recorded fixtures, frames dropped as the
 * kernel drops them; every stream is a record or a client stream id the gap went past, and a
 * stream none of whose frames were lost keeps its exact bytes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newHttp2Counters } from '../../src/http2/counters.ts';
import { Http2Connection, type Http2Sender, type Http2StreamRecord } from '../../src/http2/streams.ts';
import { loadFixtures, referenceWalk } from '../http2/fixture.ts';
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
