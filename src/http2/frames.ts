/**
 * Incremental HTTP/2 frame reader for one direction of one connection (RFC 9113 §4).
 * Fed chunks as they were captured: frames may span chunks and a chunk may end inside a
 * 9-byte frame header. A chunk may also be captured only in part (its first `captured`
 * bytes, out of `total`): the missing bytes are still counted, so every frame's size
 * (9 + length) stays exact as long as the missing bytes fall inside payloads. A missing
 * frame header cannot be skipped (the next boundary is unknown): the reader desyncs, unless
 * the capture says where the next frame starts (resync: the kernel lost records but kept
 * walking, and its next captured byte is a frame header). Structural impossibilities also
 * desync it; a desynced reader only counts bytes.
 */

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const FrameFlag = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

export const FRAME_HEADER_BYTES = 9;
/** The largest length the 24-bit field can hold: SETTINGS_MAX_FRAME_SIZE's upper bound. */
export const MAX_FRAME_SIZE_LIMIT = 0xff_ffff;
/** SETTINGS_MAX_FRAME_SIZE before the receiver says otherwise. */
export const DEFAULT_MAX_FRAME_SIZE = 16_384;

export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** True when `buf` starts with the client connection preface (or with as much of it as it holds). */
export function startsWithClientPreface(buf: Uint8Array): boolean {
  const n = Math.min(buf.length, CLIENT_PREFACE.length);
  for (let i = 0; i < n; i++) if (buf[i] !== CLIENT_PREFACE[i]) return false;
  return n > 0;
}

export type FrameDesyncReason =
  | 'bad-preface'
  | 'capture-gap'
  | 'frame-too-large'
  | 'settings-not-first'
  | 'stream-id-mismatch'
  | 'bad-length'
  | 'continuation-expected'
  | 'unexpected-continuation'
  | 'wrong-sender';

export interface Http2Frame {
  type: number;
  flags: number;
  /** Reserved bit cleared (receivers ignore it, RFC 9113 §4.1). */
  streamId: number;
  /** Payload length: the frame occupies 9 + length bytes on the wire. */
  length: number;
  /** The captured payload bytes, for the types the caller wants (else null). Only valid
   * during the callback: it may point into the caller's chunk. */
  payload: Buffer | null;
  /** False when some payload bytes were not captured (`payload` then holds the captured prefix). */
  payloadComplete: boolean;
  /** Timestamp of the chunk holding the frame's first byte, and of the one holding its last. */
  firstByteAt: number;
  lastByteAt: number;
}

export interface FrameReaderOptions {
  /** Who sends these bytes: clients never push, never open even streams. */
  sender: 'client' | 'server';
  /** The connection's start is in view: client bytes begin with the preface, and both
   * directions begin with a SETTINGS frame. Off when the capture joined mid-way. */
  connectionStart: boolean;
  /** Frame types whose payload the caller reads (others are only counted). */
  wantPayload: (type: number) => boolean;
  onFrame: (frame: Http2Frame) => void;
}

/** 'gap': after resync(), uncaptured bytes until the next captured one, a frame header. */
type Phase = 'preface' | 'header' | 'payload' | 'gap' | 'desynced';

/** Types that only exist on a stream (never on stream 0), and those only on stream 0. */
const STREAM_ONLY = new Set<number>([FrameType.DATA, FrameType.HEADERS, FrameType.PRIORITY, FrameType.RST_STREAM, FrameType.PUSH_PROMISE, FrameType.CONTINUATION]);
const CONNECTION_ONLY = new Set<number>([FrameType.SETTINGS, FrameType.PING, FrameType.GOAWAY]);

export class FrameReader {
  readonly #options: FrameReaderOptions;
  #phase: Phase;
  #prefaceMatched = 0;
  #firstFrame: boolean;
  readonly #header = Buffer.alloc(FRAME_HEADER_BYTES);
  #headerFill = 0;
  #frame: Http2Frame | null = null;
  #payloadLeft = 0;
  /** Captured payload parts of the current frame, when it spans chunks. */
  #payloadParts: Buffer[] = [];
  /** The stream whose header block awaits CONTINUATION frames (0: none). */
  #continuationStream = 0;
  /** Largest frame length the receiver accepts, as far as we know. */
  maxFrameSize: number;
  desyncReason: FrameDesyncReason | null = null;
  /** Every byte fed, captured or not. */
  bytesSeen = 0;
  /** Bytes that belong to the preface. */
  prefaceBytes = 0;
  /** Bytes of complete frames handed to onFrame (each 9 + length). */
  frameBytes = 0;
  /** Bytes fed after the reader desynced (including the frame it desynced in). */
  bytesAfterDesync = 0;
  /** Bytes of frames cut by a gap in the capture (resync): their frames were never whole. */
  bytesInGaps = 0;

  constructor(options: FrameReaderOptions) {
    this.#options = options;
    const expectPreface = options.connectionStart && options.sender === 'client';
    this.#phase = expectPreface ? 'preface' : 'header';
    this.#firstFrame = options.connectionStart;
    // Mid-way we never saw SETTINGS: only the field's own bound holds.
    this.maxFrameSize = options.connectionStart ? DEFAULT_MAX_FRAME_SIZE : MAX_FRAME_SIZE_LIMIT;
  }

  get desynced(): boolean {
    return this.#phase === 'desynced';
  }

  /** Bytes of the frame under way (header or payload seen so far): fed but not yet in a frame. */
  get pendingBytes(): number {
    if (this.#phase === 'preface') return this.#prefaceMatched;
    if (this.#phase === 'header') return this.#headerFill;
    if (this.#phase === 'payload') return FRAME_HEADER_BYTES + this.#frame!.length - this.#payloadLeft;
    return 0;
  }

  /** Feeds one chunk: `chunk` holds its captured bytes, `total` its length on the wire. */
  feed(chunk: Buffer, timestamp: number, total: number = chunk.length): void {
    const captured = Math.min(chunk.length, total);
    this.bytesSeen += total;
    let i = 0;
    while (i < captured && this.#phase !== 'desynced') i += this.#consume(chunk, i, captured, timestamp);
    let missing = total - captured;
    while (missing > 0 && this.#phase !== 'desynced') missing -= this.#skip(missing, timestamp);
    if (this.#phase === 'desynced') this.bytesAfterDesync += captured - i + missing;
  }

  /**
   * Some captured chunks never came (the capture says so), but the next captured byte starts
   * a frame header: the frame under way is dropped (its bytes counted in bytesInGaps), the
   * uncaptured bytes up to that header too, and reading goes on from there. A header block
   * left open is forgotten with it. No effect on a desynced reader.
   */
  resync(): void {
    if (this.#phase === 'desynced') return;
    this.bytesInGaps += this.#phase === 'preface' ? 0 : this.pendingBytes;
    if (this.#phase === 'preface') this.prefaceBytes = this.#prefaceMatched;
    this.#phase = 'gap';
    this.#frame = null;
    this.#payloadParts = [];
    this.#headerFill = 0;
    this.#payloadLeft = 0;
    this.#continuationStream = 0;
    this.#firstFrame = false;
  }

  #desync(reason: FrameDesyncReason): void {
    this.desyncReason = reason;
    // The frame under way is lost with the sync: its bytes are counted as after-desync.
    this.bytesAfterDesync += this.pendingBytes;
    this.#phase = 'desynced';
    this.#frame = null;
    this.#payloadParts = [];
  }

  /** Consumes captured bytes from chunk[at, end); returns how many. */
  #consume(chunk: Buffer, at: number, end: number, timestamp: number): number {
    switch (this.#phase) {
      case 'preface': {
        let n = 0;
        while (at + n < end && this.#prefaceMatched < CLIENT_PREFACE.length) {
          if (chunk[at + n] !== CLIENT_PREFACE[this.#prefaceMatched]) {
            this.#desync('bad-preface');
            return n;
          }
          this.#prefaceMatched++;
          n++;
        }
        this.#finishPrefaceIfDone();
        return n;
      }
      case 'header': {
        const n = Math.min(FRAME_HEADER_BYTES - this.#headerFill, end - at);
        if (this.#headerFill === 0) this.#startFrame(timestamp);
        chunk.copy(this.#header, this.#headerFill, at, at + n);
        this.#headerFill += n;
        if (this.#headerFill === FRAME_HEADER_BYTES) this.#headerDone(timestamp);
        return n;
      }
      case 'payload': {
        const frame = this.#frame!;
        const n = Math.min(this.#payloadLeft, end - at);
        if (frame.payloadComplete && this.#options.wantPayload(frame.type)) {
          // A part kept past this call is copied: the caller may reuse its chunk.
          const whole = n === this.#payloadLeft && this.#payloadParts.length === 0;
          this.#payloadParts.push(whole ? chunk.subarray(at, at + n) : Buffer.from(chunk.subarray(at, at + n)));
        }
        this.#payloadLeft -= n;
        if (this.#payloadLeft === 0) this.#emit(timestamp);
        return n;
      }
      case 'gap':
        this.#phase = 'header';
        return 0;
      default:
        return end - at;
    }
  }

  /** Accounts for up to `missing` uncaptured bytes; returns how many it took. */
  #skip(missing: number, timestamp: number): number {
    switch (this.#phase) {
      case 'preface': {
        // Its content is fixed; assume it rather than lose the connection.
        const n = Math.min(missing, CLIENT_PREFACE.length - this.#prefaceMatched);
        this.#prefaceMatched += n;
        this.#finishPrefaceIfDone();
        return n;
      }
      case 'payload': {
        const n = Math.min(this.#payloadLeft, missing);
        this.#frame!.payloadComplete = false;
        this.#payloadLeft -= n;
        if (this.#payloadLeft === 0) this.#emit(timestamp);
        return n;
      }
      case 'header':
        // A frame header we cannot see: where the next frame starts is unknown.
        this.#desync('capture-gap');
        return 0;
      case 'gap':
        this.bytesInGaps += missing;
        return missing;
      default:
        return missing;
    }
  }

  #finishPrefaceIfDone(): void {
    if (this.#prefaceMatched === CLIENT_PREFACE.length) {
      this.prefaceBytes = CLIENT_PREFACE.length;
      this.#phase = 'header';
    }
  }

  #startFrame(timestamp: number): void {
    this.#frame = { type: 0, flags: 0, streamId: 0, length: 0, payload: null, payloadComplete: true, firstByteAt: timestamp, lastByteAt: timestamp };
  }

  #headerDone(timestamp: number): void {
    const h = this.#header;
    const frame = this.#frame!;
    frame.length = (h[0]! << 16) | (h[1]! << 8) | h[2]!;
    frame.type = h[3]!;
    frame.flags = h[4]!;
    frame.streamId = h.readUInt32BE(5) & 0x7fff_ffff;
    const problem = this.#check(frame);
    if (problem) {
      this.#desync(problem);
      return;
    }
    this.#payloadLeft = frame.length;
    if (frame.length === 0) this.#emit(timestamp);
    else this.#phase = 'payload';
  }

  /** What makes this frame header impossible from a conforming peer, if anything. */
  #check(f: Http2Frame): FrameDesyncReason | null {
    if (f.length > this.maxFrameSize) return 'frame-too-large';
    if (this.#firstFrame && (f.type !== FrameType.SETTINGS || (f.flags & FrameFlag.ACK) !== 0)) return 'settings-not-first';
    this.#firstFrame = false;
    if (this.#continuationStream !== 0) {
      if (f.type !== FrameType.CONTINUATION) return 'continuation-expected';
      if (f.streamId !== this.#continuationStream) return 'stream-id-mismatch';
    } else if (f.type === FrameType.CONTINUATION && this.#options.connectionStart) {
      // Mid-way, the HEADERS this continues may precede the capture.
      return 'unexpected-continuation';
    }
    if (STREAM_ONLY.has(f.type) && f.streamId === 0) return 'stream-id-mismatch';
    if (CONNECTION_ONLY.has(f.type) && f.streamId !== 0) return 'stream-id-mismatch';
    if (!this.#lengthFits(f)) return 'bad-length';
    const fromClient = this.#options.sender === 'client';
    if (fromClient && f.type === FrameType.PUSH_PROMISE) return 'wrong-sender';
    // Clients open odd streams only; a server pushes on streams the client opened.
    if (fromClient && f.type === FrameType.HEADERS && f.streamId % 2 === 0) return 'wrong-sender';
    if (!fromClient && f.type === FrameType.PUSH_PROMISE && f.streamId % 2 === 0) return 'wrong-sender';
    const opensBlock = f.type === FrameType.HEADERS || f.type === FrameType.PUSH_PROMISE || f.type === FrameType.CONTINUATION;
    if (opensBlock) this.#continuationStream = (f.flags & FrameFlag.END_HEADERS) === 0 ? f.streamId : 0;
    return null;
  }

  #lengthFits(f: Http2Frame): boolean {
    switch (f.type) {
      case FrameType.PRIORITY:
        return f.length === 5;
      case FrameType.RST_STREAM:
      case FrameType.WINDOW_UPDATE:
        return f.length === 4;
      case FrameType.SETTINGS:
        return (f.flags & FrameFlag.ACK) !== 0 ? f.length === 0 : f.length % 6 === 0;
      case FrameType.PING:
        return f.length === 8;
      case FrameType.GOAWAY:
        return f.length >= 8;
      case FrameType.PUSH_PROMISE:
        return f.length >= 4 + ((f.flags & FrameFlag.PADDED) !== 0 ? 1 : 0);
      case FrameType.HEADERS:
        return f.length >= ((f.flags & FrameFlag.PADDED) !== 0 ? 1 : 0) + ((f.flags & FrameFlag.PRIORITY) !== 0 ? 5 : 0);
      case FrameType.DATA:
        return f.length >= ((f.flags & FrameFlag.PADDED) !== 0 ? 1 : 0);
      default:
        return true;
    }
  }

  #emit(timestamp: number): void {
    const frame = this.#frame!;
    frame.lastByteAt = timestamp;
    const parts = this.#payloadParts;
    if (this.#options.wantPayload(frame.type)) {
      frame.payload = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    }
    this.#payloadParts = [];
    this.#frame = null;
    this.#headerFill = 0;
    this.#phase = 'header';
    this.frameBytes += FRAME_HEADER_BYTES + frame.length;
    this.#options.onFrame(frame);
  }
}
