/**
 * Joins a header block's fragments (RFC 9113 §4.3): HEADERS or PUSH_PROMISE, then
 * CONTINUATION frames until END_HEADERS, with padding and priority fields taken off.
 * Fragments captured only in part end the usable bytes: what follows a gap cannot be
 * appended, so the block is reported incomplete with the prefix before the gap.
 */
import { FrameFlag, FrameType, type Http2Frame } from './frames.ts';

/** Blocks beyond this are not kept whole (the decoder then treats them as cut). */
export const MAX_HEADER_BLOCK_BYTES = 256 * 1024;

export interface HeaderBlock {
  type: typeof FrameType.HEADERS | typeof FrameType.PUSH_PROMISE;
  streamId: number;
  /** END_STREAM on the HEADERS frame (it takes effect once the block is complete). */
  endStream: boolean;
  /** The captured fragment bytes, in order, up to the first gap. */
  bytes: Buffer;
  /** Every fragment byte was captured (and the block stayed under the bound). */
  complete: boolean;
  lastByteAt: number;
}

export type BlockResult = HeaderBlock | 'pending' | 'bad-padding' | 'orphan-continuation';

export class HeaderBlockAssembler {
  #open: { block: HeaderBlock; parts: Buffer[]; size: number } | null = null;

  /** A gap in the capture: the block under way (if any) will not end in view. */
  forget(): void {
    this.#open = null;
  }

  /** Takes a HEADERS, PUSH_PROMISE or CONTINUATION frame; returns the block once it ends. */
  add(frame: Http2Frame): BlockResult {
    if (frame.type === FrameType.CONTINUATION) {
      // The frame reader guarantees order on a connection whose start was seen; mid-way, a
      // CONTINUATION may belong to a block whose HEADERS came before the capture.
      if (this.#open === null) return 'orphan-continuation';
      this.#append(frame.payload, 0, frame.length);
    } else {
      const { offset, padLength, complete } = fragmentBounds(frame);
      if (complete && offset + padLength > frame.length) return 'bad-padding';
      const type = frame.type === FrameType.HEADERS ? FrameType.HEADERS : FrameType.PUSH_PROMISE;
      const endStream = type === FrameType.HEADERS && (frame.flags & FrameFlag.END_STREAM) !== 0;
      this.#open = { block: { type, streamId: frame.streamId, endStream, bytes: Buffer.alloc(0), complete: true, lastByteAt: frame.lastByteAt }, parts: [], size: 0 };
      if (complete) this.#append(frame.payload, offset, frame.length - padLength);
      else this.#open.block.complete = false;
    }
    const open = this.#open;
    open.block.lastByteAt = frame.lastByteAt;
    if ((frame.flags & FrameFlag.END_HEADERS) === 0) return 'pending';
    this.#open = null;
    open.block.bytes = open.parts.length === 1 ? open.parts[0]! : Buffer.concat(open.parts);
    return open.block;
  }

  #append(payload: Buffer | null, start: number, end: number): void {
    const open = this.#open!;
    if (!open.block.complete || payload === null) {
      open.block.complete = false;
      return;
    }
    const available = Math.min(end, payload.length);
    if (available > start) {
      const take = Math.min(available - start, MAX_HEADER_BLOCK_BYTES - open.size);
      // Copied: the payload may point into the caller's chunk.
      open.parts.push(Buffer.from(payload.subarray(start, start + take)));
      open.size += take;
      if (take < available - start) open.block.complete = false;
    }
    // Bytes missing before `end` are fragment bytes (missing padding does not matter).
    if (available < end) open.block.complete = false;
  }
}

/** Where a HEADERS or PUSH_PROMISE frame's fragment lies; `complete` false when the pad length went uncaptured. */
function fragmentBounds(frame: Http2Frame): { offset: number; padLength: number; complete: boolean } {
  const payload = frame.payload;
  let offset = 0;
  let padLength = 0;
  if ((frame.flags & FrameFlag.PADDED) !== 0) {
    if (payload === null || payload.length < 1) return { offset: 0, padLength: 0, complete: false };
    padLength = payload[0]!;
    offset = 1;
  }
  if (frame.type === FrameType.HEADERS && (frame.flags & FrameFlag.PRIORITY) !== 0) offset += 5;
  if (frame.type === FrameType.PUSH_PROMISE) offset += 4;
  return { offset, padLength, complete: true };
}
