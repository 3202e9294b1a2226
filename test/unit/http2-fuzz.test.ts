/**
 * Seeded fuzz of the HTTP/2 decoding core (frames + HPACK + stream assembly) over mutated
 * windows of the recorded fixtures: bit flips, telling bytes, truncated captures, cut chunks,
 * splices of other fixtures' frames, dropped and repeated chunks, either connection start.
 * Nothing throws, nothing hangs (the run is timed), every fed byte is accounted for, and every
 * decoded header name and value is derivable from the input: a static-table entry, or bytes
 * present as a literal or as its Huffman coding in a header block the sender's frames carried
 * (that block or an earlier one, whose literals fill the dynamic table). Block bytes are the
 * frames' payload bytes (the frame reader tests hold that); a literal may span HEADERS and
 * CONTINUATION, so it is looked for in the joined block, not in the raw input.
 *
 * The default run is short; PERFCATCH_FUZZ_ITERATIONS=1000000 runs the full million.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { STATIC_TABLE } from '../../src/http2/hpack-static-table.ts';
import { Http2Connection, type Http2Sender } from '../../src/http2/streams.ts';
import { loadFixtures } from '../http2/fixture.ts';
import { encodeHuffman } from '../http2/huffman-encode.ts';
import { perFrame, type CapturedChunk } from '../http2/replay.ts';
import { prng } from '../harness/prng.ts';

const ITERATIONS = Number(process.env.PERFCATCH_FUZZ_ITERATIONS ?? 50_000);
const SEED = 0x4832_2026;
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
function mutatedInput(rand: () => number): { chunks: CapturedChunk[]; start: 'preface' | 'midway' } {
  const source = CORPUS[rand() % CORPUS.length]!;
  const fromStart = rand() % 3 !== 0;
  const length = 1 + (rand() % 24);
  const first = fromStart ? 0 : rand() % source.length;
  const chunks = source.slice(first, first + length).map((c) => ({ ...c }));
  const edits = 1 + (rand() % 4);
  for (let e = 0; e < edits && chunks.length > 0; e++) {
    const i = rand() % chunks.length;
    const c = chunks[i]!;
    const at = c.bytes.length ? rand() % c.bytes.length : 0;
    switch (rand() % 8) {
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

/** A string's two possible codings, cached: the same fields recur across inputs. */
const codings = new Map<string, [Buffer, Buffer]>();

/** Is `s` (latin1 octets) in the input: a static entry, its bytes, or its Huffman coding. */
function derivable(s: string, views: Buffer[]): boolean {
  if (s.length === 0 || STATIC_STRINGS.has(s)) return true;
  let coded = codings.get(s);
  if (coded === undefined) {
    coded = [Buffer.from(s, 'latin1'), encodeHuffman(s)];
    // Short ones only: mutated 40 KB values would fill memory.
    if (s.length <= 256 && codings.size < 100_000) codings.set(s, coded);
  }
  const [raw, huffman] = coded;
  return views.some((v) => v.includes(raw) || v.includes(huffman));
}

describe(`HTTP/2 fuzz (seed ${SEED.toString(16)})`, () => {
  it(`${ITERATIONS.toLocaleString('en')} mutated captures through frames, HPACK and streams: no throw, every byte accounted, no header from nowhere`, () => {
    assert.ok(CORPUS.length >= 5);
    const rand = prng(SEED);
    const started = performance.now();
    let fields = 0;
    let records = 0;
    let desynced = 0;
    for (let n = 0; n < ITERATIONS; n++) {
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
      for (const c of chunks) out.push(...connection.feed(c.from, c.bytes, ++t, c.total));
      out.push(...connection.close(++t));
      records += out.length;
      if (connection.desynced) desynced++;

      for (const sender of ['client', 'server'] as const) {
        const mine = chunks.filter((c) => c.from === sender);
        const a = connection.accounting(sender);
        const total = mine.reduce((s, c) => s + c.total, 0);
        assert.equal(a.fed, total);
        assert.equal(a.preface + a.connectionFrames + a.untrackedFrames + a.streamFrames + a.pending + a.afterDesync, total, `accounting, input ${n}`);
        assert.equal(out.reduce((s, r) => s + (sender === 'client' ? r.requestBytes : r.responseBytes), 0), a.streamFrames);
      }
      for (const r of out) {
        assert.ok(r.startTime <= r.endTime && r.requestBytes >= 0 && r.responseBytes >= 0);
        assert.ok(r.status === null || (r.status >= 200 && r.status <= 999));
      }
      for (const f of seen) {
        fields++;
        for (const s of [f.name, f.value]) {
          if (s !== null && !derivable(s, f.blocks)) assert.fail(`input ${n}: ${JSON.stringify(s.slice(0, 80))} is not in the input`);
        }
      }
    }
    const ms = performance.now() - started;
    console.log(`# ${ITERATIONS} inputs in ${ms.toFixed(0)} ms: ${fields} header fields checked, ${records} stream records, ${desynced} connections desynced`);
    assert.ok(fields > ITERATIONS, 'the mutations still reach the HPACK decoder');
  });
});
