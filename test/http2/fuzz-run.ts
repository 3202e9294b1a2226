/**
 * The HTTP/2 fuzz of test/unit/http2-fuzz.test.ts: mutated windows of the recorded fixtures
 * (bit flips, telling bytes, truncated captures, cut chunks, splices of other fixtures' frames,
 * dropped and repeated chunks, either connection start) through frames, HPACK and stream
 * assembly. Nothing throws, every fed byte is accounted for, and every decoded header name and
 * value is derivable from the input: a static-table entry, or bytes present as a literal or as
 * its Huffman coding in a header block the sender's frames carried (that block or an earlier
 * one, whose literals fill the dynamic table). Block bytes are the frames' payload bytes (the
 * frame reader tests hold that); a literal may span HEADERS and CONTINUATION, so it is looked
 * for in the joined block, not in the raw input. Runs in worker threads (fuzz-worker.ts).
 */
import assert from 'node:assert/strict';
import { STATIC_TABLE } from '../../src/http2/hpack-static-table.ts';
import { Http2Connection, type Http2Sender } from '../../src/http2/streams.ts';
import { loadFixtures } from './fixture.ts';
import { encodeHuffman } from './huffman-encode.ts';
import { perFrame, type CapturedChunk } from './replay.ts';
import { prng } from '../harness/prng.ts';

/** Captured bytes kept of a DATA frame: their content never matters, only their count. */
const DATA_CAPTURE = 16;

/** Each fixture as one chunk per frame, DATA payloads captured only in part (as a capture limit would). */
const CORPUS: CapturedChunk[][] = [...loadFixtures().values()]
  .filter(({ fixture }) => fixture.start === 'preface')
  .map(({ chunks }) => perFrame(chunks).map((c) => (c.bytes.length > 9 && c.bytes[3] === 0 ? { ...c, bytes: c.bytes.subarray(0, 9 + DATA_CAPTURE) } : c)));
const ALL_FRAMES = CORPUS.flat();
const SPICE = [0x00, 0x01, 0x04, 0x05, 0x08, 0x09, 0x20, 0x3f, 0x40, 0x7f, 0x80, 0x81, 0xbe, 0xff];
const STATIC_STRINGS = new Set(STATIC_TABLE.flat());

/** A window of a fixture (from its start, or mid-way), mutated. */
/** A chunk the kernel marked as following a gap (records of its direction lost before it). */
type FuzzChunk = CapturedChunk & { gap?: { hpackLost: boolean } };

function mutatedInput(rand: () => number): { chunks: FuzzChunk[]; start: 'preface' | 'midway' } {
  const source = CORPUS[rand() % CORPUS.length]!;
  const fromStart = rand() % 3 !== 0;
  const length = 1 + (rand() % 24);
  const first = fromStart ? 0 : rand() % source.length;
  const chunks: FuzzChunk[] = source.slice(first, first + length).map((c) => ({ ...c }));
  const edits = 1 + (rand() % 4);
  for (let e = 0; e < edits && chunks.length > 0; e++) {
    const i = rand() % chunks.length;
    const c = chunks[i]!;
    const at = c.bytes.length ? rand() % c.bytes.length : 0;
    switch (rand() % 9) {
      case 8: {
        // a gap: 1-3 chunks lost, the next one says so (whether they held header blocks: random,
        // so a wrong claim by the kernel must not break the accounting either)
        chunks.splice(i, 1 + (rand() % 3));
        const next = chunks[i];
        if (next) next.gap = { hpackLost: rand() % 2 === 0 };
        break;
      }
      case 0: {
        const b = Buffer.from(c.bytes);
        if (b.length) b[at] = b[at]! ^ (1 << (rand() % 8));
        c.bytes = b;
        break;
      }
      case 1: {
        const b = Buffer.from(c.bytes);
        if (b.length) b[at] = SPICE[rand() % SPICE.length]!;
        c.bytes = b;
        break;
      }
      case 2: // captured only in part (the length on the wire unchanged)
        c.bytes = c.bytes.subarray(0, at);
        break;
      case 3: // the chunk itself cut short (the wire lost bytes: lengths now lie)
        c.bytes = c.bytes.subarray(0, at);
        c.total = at;
        break;
      case 4: {
        // a frame of another fixture spliced in
        const other = ALL_FRAMES[rand() % ALL_FRAMES.length]!;
        chunks.splice(i, 0, { ...other, from: rand() % 2 ? 'client' : 'server' });
        break;
      }
      case 5:
        chunks.splice(i, 1);
        break;
      case 6:
        chunks.splice(i, 0, { ...c });
        break;
      default: {
        // random bytes inserted
        const junk = Buffer.from(Array.from({ length: 1 + (rand() % 12) }, () => rand() & 0xff));
        c.bytes = Buffer.concat([c.bytes.subarray(0, at), junk, c.bytes.subarray(at)]);
        c.total = Math.max(c.total + junk.length, c.bytes.length);
      }
    }
  }
  return { chunks, start: fromStart ? 'preface' : 'midway' };
}

/** Huffman codings of the short strings checked, cached within a byte budget: the same fields recur across inputs. */
const codings = new Map<string, Buffer>();
let codingBytes = 0;
const CODING_BUDGET = 64 << 20;
/** Longer strings are mutated values, rarely seen twice: hashing them for a cache costs more than it saves. */
const CACHED_LENGTH = 256;
const LONGEST_STATIC = Math.max(...[...STATIC_STRINGS].map((x) => x.length));

/** Is `s` (latin1 octets) in the input: a static entry, its bytes, or its Huffman coding. */
function derivable(s: string, views: Buffer[]): boolean {
  if (s.length === 0 || (s.length <= LONGEST_STATIC && STATIC_STRINGS.has(s))) return true;
  const raw = Buffer.from(s, 'latin1');
  if (views.some((v) => v.includes(raw))) return true;
  let huffman = s.length <= CACHED_LENGTH ? codings.get(s) : undefined;
  if (huffman === undefined) {
    huffman = encodeHuffman(s);
    if (s.length <= CACHED_LENGTH && codingBytes + s.length <= CODING_BUDGET) {
      codings.set(s, huffman);
      codingBytes += s.length + huffman.length;
    }
  }
  return views.some((v) => v.includes(huffman));
}

export interface FuzzSummary {
  inputs: number;
  fields: number;
  records: number;
  desynced: number;
}

/** `iterations` inputs from `seed`: throws (an assertion error naming the seed and input) at the first failed check. */
export function runFuzz(seed: number, iterations: number): FuzzSummary {
  assert.ok(CORPUS.length >= 5);
  const rand = prng(seed);
  let fields = 0;
  let records = 0;
  let desynced = 0;
  for (let n = 0; n < iterations; n++) {
    const { chunks, start } = mutatedInput(rand);
    const seen: { sender: Http2Sender; name: string | null; value: string | null; blocks: Buffer[] }[] = [];
    const blocks: Record<Http2Sender, Buffer[]> = { client: [], server: [] };
    const connection = new Http2Connection({
      start,
      selectedHeaders: ['x-correlation-id', 'traceparent'],
      onHeaderBlock: (sender, _id, decoded, blockBytes) => {
        blocks[sender].push(blockBytes);
        const soFar = [...blocks[sender]];
        for (const f of decoded.fields) seen.push({ sender, ...f, blocks: soFar });
      },
    });
    const out = [];
    let t = 0;
    for (const c of chunks) {
      if (c.gap) connection.gap(c.from, c.gap.hpackLost);
      out.push(...connection.feed(c.from, c.bytes, ++t, c.total));
    }
    out.push(...connection.close(++t));
    records += out.length;
    if (connection.desynced) desynced++;
    const where = `seed ${seed.toString(16)} input ${n}`;

    for (const sender of ['client', 'server'] as const) {
      const mine = chunks.filter((c) => c.from === sender);
      const a = connection.accounting(sender);
      const total = mine.reduce((s, c) => s + c.total, 0);
      assert.equal(a.fed, total, where);
      assert.equal(a.preface + a.connectionFrames + a.untrackedFrames + a.streamFrames + a.pending + a.afterDesync + a.inGaps, total, `accounting, ${where}`);
      assert.equal(out.reduce((s, r) => s + (sender === 'client' ? r.requestBytes : r.responseBytes), 0), a.streamFrames, where);
    }
    for (const r of out) {
      assert.ok(r.startTime <= r.endTime && r.requestBytes >= 0 && r.responseBytes >= 0, where);
      assert.ok(r.status === null || (r.status >= 200 && r.status <= 999), where);
    }
    for (const f of seen) {
      fields++;
      for (const s of [f.name, f.value]) {
        if (s !== null && !derivable(s, f.blocks)) assert.fail(`${where}: ${JSON.stringify(s.slice(0, 80))} is not in the input`);
      }
    }
  }
  return { inputs: iterations, fields, records, desynced };
}
