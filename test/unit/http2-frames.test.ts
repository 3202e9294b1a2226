/**
 * The incremental HTTP/2 frame reader: the same frames whatever the chunk boundaries, exact
 * sizes when payload bytes were not captured, and a desync (not a guess) on anything a
 * conforming peer cannot send.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CLIENT_PREFACE, FrameReader, startsWithClientPreface, type Http2Frame } from '../../src/http2/frames.ts';
import { h2Frame } from '../http2/frame-bytes.ts';

const frame = h2Frame;

const SETTINGS = frame(4, 0, 0, Buffer.from([0, 5, 0, 0, 0x40, 0]));
const HEADERS = frame(1, 4, 1, Buffer.from([0x82, 0x86, 0x84]));
const DATA = frame(0, 1, 1, 100);
const CLIENT = Buffer.concat([CLIENT_PREFACE, SETTINGS, HEADERS, DATA]);

type Seen = Pick<Http2Frame, 'type' | 'flags' | 'streamId' | 'length' | 'payloadComplete'> & { payload: string | null };

function read(chunks: { bytes: Buffer; total?: number }[], sender: 'client' | 'server' = 'client', connectionStart = true) {
  const frames: Seen[] = [];
  const reader = new FrameReader({
    sender,
    connectionStart,
    wantPayload: (t) => t !== 0,
    onFrame: (f) => frames.push({ type: f.type, flags: f.flags, streamId: f.streamId, length: f.length, payloadComplete: f.payloadComplete, payload: f.payload?.toString('hex') ?? null }),
  });
  chunks.forEach((c, i) => reader.feed(c.bytes, i, c.total));
  // Every byte fed is somewhere.
  assert.equal(reader.prefaceBytes + reader.frameBytes + reader.pendingBytes + reader.bytesAfterDesync, reader.bytesSeen);
  return { frames, reader };
}

describe('HTTP/2 frame reader', () => {
  it('detects the client preface, whole or begun', () => {
    assert.ok(startsWithClientPreface(CLIENT));
    assert.ok(startsWithClientPreface(CLIENT_PREFACE.subarray(0, 5)));
    assert.ok(!startsWithClientPreface(Buffer.from('GET / HTTP/1.1\r\n')));
    assert.ok(!startsWithClientPreface(Buffer.alloc(0)));
  });

  it('yields the same frames for any chunking, down to one byte', () => {
    const whole = read([{ bytes: CLIENT }]).frames;
    assert.deepEqual(
      whole.map((f) => [f.type, f.streamId, f.length]),
      [
        [4, 0, 6],
        [1, 1, 3],
        [0, 1, 100],
      ],
    );
    assert.equal(whole[1]!.payload, '828684');
    for (const size of [1, 2, 5, 9, 10, 33]) {
      const chunks = [];
      for (let i = 0; i < CLIENT.length; i += size) chunks.push({ bytes: CLIENT.subarray(i, i + size) });
      assert.deepEqual(read(chunks).frames, whole, `chunks of ${size}`);
    }
  });

  it('a payload kept past its chunk is a copy: the caller may reuse its buffer', () => {
    const reused = Buffer.alloc(CLIENT.length);
    const frames: string[] = [];
    const reader = new FrameReader({ sender: 'client', connectionStart: true, wantPayload: () => true, onFrame: (f) => frames.push(f.payload!.toString('hex')) });
    const cut = CLIENT.length - DATA.length - 2; // inside the HEADERS payload
    CLIENT.copy(reused, 0, 0, cut);
    reader.feed(reused.subarray(0, cut), 0);
    reused.fill(0);
    CLIENT.copy(reused, 0, cut);
    reader.feed(reused.subarray(0, CLIENT.length - cut), 1);
    assert.equal(frames[1], '828684');
  });

  it('payload bytes not captured: sizes stay exact, the frame says its payload is partial', () => {
    const headersEnd = 24 + SETTINGS.length + HEADERS.length;
    const { frames, reader } = read([
      { bytes: CLIENT.subarray(0, headersEnd - 2), total: headersEnd },
      { bytes: DATA.subarray(0, 10), total: DATA.length },
    ]);
    assert.deepEqual(
      frames.map((f) => [f.type, f.length, f.payloadComplete, f.payload]),
      [
        [4, 6, true, '000500004000'],
        [1, 3, false, '82'],
        [0, 100, false, null],
      ],
    );
    assert.equal(reader.frameBytes, CLIENT.length - 24);
    assert.equal(reader.desyncReason, null);
  });

  it('preface bytes not captured are assumed (their content is fixed)', () => {
    const { frames, reader } = read([{ bytes: CLIENT.subarray(0, 10), total: 24 }, { bytes: CLIENT.subarray(24) }]);
    assert.equal(frames.length, 3);
    assert.equal(reader.prefaceBytes, 24);
  });

  it('a frame header not captured desyncs (the next boundary is unknown), bytes still counted', () => {
    const { frames, reader } = read([{ bytes: CLIENT.subarray(0, 24 + SETTINGS.length + 4), total: CLIENT.length }, { bytes: DATA }]);
    assert.equal(frames.length, 1);
    assert.equal(reader.desyncReason, 'capture-gap');
    assert.equal(reader.bytesSeen, CLIENT.length + DATA.length);
  });

  const clientStart = (...frames: Buffer[]) => Buffer.concat([CLIENT_PREFACE, SETTINGS, ...frames]);
  for (const [what, bytes, reason, sender] of [
    ['a wrong preface', Buffer.from('PRI * HTTP/1.1\r\n\r\nSM\r\n\r\n'), 'bad-preface', 'client'],
    ['a first frame other than SETTINGS', Buffer.concat([CLIENT_PREFACE, HEADERS]), 'settings-not-first', 'client'],
    ['a server starting with a PING', frame(6, 0, 0, 8), 'settings-not-first', 'server'],
    ['DATA on stream 0', clientStart(frame(0, 0, 0, 1)), 'stream-id-mismatch', 'client'],
    ['SETTINGS on a stream', clientStart(frame(4, 0, 3, 6)), 'stream-id-mismatch', 'client'],
    ['a 7-byte PING', clientStart(frame(6, 0, 0, 7)), 'bad-length', 'client'],
    ['a 5-byte RST_STREAM', clientStart(frame(3, 0, 1, 5)), 'bad-length', 'client'],
    ['a SETTINGS ACK with a payload', clientStart(frame(4, 1, 0, 6)), 'bad-length', 'client'],
    ['a frame over the 16,384 default max size', clientStart(frame(0, 0, 1, 16_385)), 'frame-too-large', 'client'],
    ['a HEADERS without END_HEADERS followed by DATA', clientStart(frame(1, 0, 1, 3), frame(0, 0, 1, 1)), 'continuation-expected', 'client'],
    ['a CONTINUATION on another stream', clientStart(frame(1, 0, 1, 3), frame(9, 4, 3, 1)), 'stream-id-mismatch', 'client'],
    ['a CONTINUATION out of the blue', clientStart(frame(9, 4, 1, 1)), 'unexpected-continuation', 'client'],
    ['a client PUSH_PROMISE', clientStart(frame(5, 4, 1, 4)), 'wrong-sender', 'client'],
    ['a client HEADERS on an even stream', clientStart(frame(1, 4, 2, 1)), 'wrong-sender', 'client'],
  ] as const) {
    it(`desyncs on ${what}`, () => {
      const server = sender === 'server';
      const { reader } = read([{ bytes: server ? bytes : bytes }, { bytes: DATA }], sender);
      assert.equal(reader.desyncReason, reason);
    });
  }

  it('frames up to the advertised max size pass; unknown frame types and flags are ignored', () => {
    const reader = new FrameReader({ sender: 'client', connectionStart: true, wantPayload: () => false, onFrame: () => {} });
    reader.maxFrameSize = 1 << 20;
    reader.feed(clientStart(frame(0, 0, 1, 100_000), frame(0xb, 0xff, 0, 3), frame(0x10, 0, 5, 1)), 0);
    assert.equal(reader.desyncReason, null);
    assert.equal(reader.pendingBytes, 0);
  });

  it('mid-way: no preface, no SETTINGS first, any frame size, a CONTINUATION may come first', () => {
    const { frames, reader } = read([{ bytes: Buffer.concat([frame(9, 4, 1, 2), frame(0, 0, 1, 20_000), HEADERS]) }], 'client', false);
    assert.equal(reader.desyncReason, null);
    assert.equal(frames.length, 3);
  });
});
