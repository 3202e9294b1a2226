/**
 * Splits the loader's stdout into frames: a little-endian u32 byte length, then the record.
 * Frames may straddle chunks; only the unfinished tail is ever copied.
 */

/** Refuse absurd lengths instead of buffering forever on a corrupt stream. */
export const MAX_FRAME_BYTES = 1 << 20;

export class FrameError extends Error {}

export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);
  private readonly onFrame: (frame: Buffer) => void;

  constructor(onFrame: (frame: Buffer) => void) {
    this.onFrame = onFrame;
  }

  /** Feed one stdout chunk; calls onFrame for each complete frame (a view, valid during the call). */
  push(chunk: Buffer): void {
    const buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    let pos = 0;
    while (buf.length - pos >= 4) {
      const len = buf.readUInt32LE(pos);
      if (len < 4 || len > MAX_FRAME_BYTES) {
        this.pending = Buffer.alloc(0);
        throw new FrameError(`loader stream corrupt: frame length ${len}`);
      }
      if (buf.length - pos - 4 < len) break;
      this.onFrame(buf.subarray(pos + 4, pos + 4 + len));
      pos += 4 + len;
    }
    // Copy the tail: `chunk` belongs to the stream and may be reused.
    this.pending = pos === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(pos));

  }

  get bufferedBytes(): number {
    return this.pending.length;
  }
}
