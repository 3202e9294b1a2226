/**
 * Per-connection HTTP/2 stream assembler: turns both directions' captured bytes into one
 * record per request stream (RFC 9113 §5). A request is a client-initiated (odd) stream; it
 * starts at the client's first HEADERS frame and ends at the server's END_STREAM (on DATA or
 * trailers) or at RST_STREAM from either side. Every frame of a stream, 9-byte header
 * included, is charged to the side that sent it; stream-0 frames, pushed streams and frames
 * outside any open stream are counted on the connection instead.
 *
 * The same assembler serves both ends: for a server we observe, the client is the remote
 * peer; for an outbound call, the client is the observed process. Only the roles of the
 * bytes matter, so callers say who sent each chunk.
 *
 * Chunks must be fed in capture order across both directions (a response after its request).
 */
import type { Http2Counters } from './counters.ts';
import { FrameFlag, FrameReader, FrameType, MAX_FRAME_SIZE_LIMIT, type FrameDesyncReason, type Http2Frame } from './frames.ts';
import { HeaderBlockAssembler, type HeaderBlock } from './header-blocks.ts';
import { HpackDecoder, MAX_TRACKED_TABLE_SIZE, type DecodedHeaderBlock, type HpackError } from './hpack.ts';
import { parseHttp2SettingsHeader, parseSettings, SettingId, type Setting } from './settings.ts';
import { StreamState, type Http2Sender, type Http2StreamRecord, type StreamEnd } from './stream-record.ts';

export type { Http2Sender, Http2StreamRecord } from './stream-record.ts';

/** Open streams kept per connection; beyond, new streams are only counted. */
export const DEFAULT_MAX_OPEN_STREAMS = 10_000;
/** Closed stream ids remembered mid-way (to tell a late frame from a stream begun before the capture). */
const CLOSED_IDS_REMEMBERED = 4096;

/**
 * Streams whose end a gap swallowed (the ring buffer refused the records holding their
 * END_STREAM or RST_STREAM) would stay open until the connection closes: on a long-lived gRPC
 * connection, thousands of them. A stream open across a gap (framesMissed) that has shown no
 * frame of its own since the gap began ends as 'lost-in-gap' once the client has opened more
 * than GAP_SWEEP_TURNOVERS × max(GAP_SWEEP_FLOOR, capacity) new streams since that gap, where
 * capacity is the most streams seen open at once on the connection that were not waiting out
 * a gap (dead streams must not raise their own threshold), or the server's
 * SETTINGS_MAX_CONCURRENT_STREAMS when it sent a larger one, no larger than the open-stream
 * bound (a larger one is no bound: Node and Envoy send 2^32-1 and 2^31-1).
 *
 * The floor, 100, is RFC 9113 §6.5.2's recommended least SETTINGS_MAX_CONCURRENT_STREAMS; the
 * factor leaves a live call room to be several times slower than its neighbours: ids are a
 * clock the client's own pace drives, so with `capacity` streams in flight each of them sees
 * about `capacity` new ones open over one typical lifetime, and a stall of the whole
 * connection (a GC pause) opens none. A stream that shows any frame after the gap is never
 * ended so; a quiet one (a streaming RPC idle across the gap) is, with its end unknown.
 */
const GAP_SWEEP_FLOOR = 100;
const GAP_SWEEP_TURNOVERS = 4;

/** Adds `id` to a set of stream ids that forgets its oldest past CLOSED_IDS_REMEMBERED. */
function rememberId(ids: Set<number>, id: number): void {
  ids.add(id);
  if (ids.size > CLOSED_IDS_REMEMBERED) ids.delete(ids.values().next().value!);
}

/** The HTTP/1.1 request an h2c upgrade turned into stream 1 (RFC 7540 §3.2). */
export interface UpgradedRequest {
  method: string;
  path: string;
  authority: string | null;
  /** The selected request headers, by lowercased name. */
  headers: ReadonlyMap<string, string>;
  contentType: string | null;
  /** Its HTTP2-Settings header: the client's SETTINGS for the new connection. */
  http2Settings: string | null;
  /** Bytes of the HTTP/1.1 request, and of the 101 response head. */
  requestBytes: number;
  responseBytes: number;
  startTime: number;
}

export interface Http2ConnectionOptions {
  /** 'preface': the capture holds the connection's start (h2c prior knowledge, or after an
   * Upgrade: h2c, see `upgrade`). 'midway': the capture joined an established connection. */
  start: 'preface' | 'midway';
  upgrade?: UpgradedRequest;
  /** Request header names to keep (lowercase), e.g. traceparent, x-correlation-id. */
  selectedHeaders?: Iterable<string>;
  counters?: Http2Counters;
  maxOpenStreams?: number;
  /** Sees every frame charged to a stream record, as it is (CPU attribution: which streams a syscall carried). */
  onStreamFrame?: (sender: Http2Sender, streamId: number, bytes: number) => void;
  /** Sees every decoded header block, with the fragment bytes it was decoded from (tests, diagnostics). */
  onHeaderBlock?: (sender: Http2Sender, streamId: number, decoded: DecodedHeaderBlock, blockBytes: Buffer) => void;
}

/** Where each fed byte of one direction went. */
export interface Http2ByteAccounting {
  fed: number;
  preface: number;
  /** Frames on stream 0. */
  connectionFrames: number;
  /** Frames on streams with no open record: pushed, idle, already ended, or over the bound. */
  untrackedFrames: number;
  /** Frames charged to stream records (emitted or open). */
  streamFrames: number;
  /** The frame under way at the end of the input. */
  pending: number;
  /** Fed once the connection desynced. */
  afterDesync: number;
  /** Frames cut by gaps in the capture (gap()), and the uncaptured bytes up to the next frame. */
  inGaps: number;
}

/**
 * Who sent a chunk the observed process read or wrote: a server's reads come from the client;
 * for an outbound call (the process is the client) its writes do.
 */
export function senderOf(observedRole: 'server' | 'client', direction: 'read' | 'write'): Http2Sender {
  return (observedRole === 'server') === (direction === 'read') ? 'client' : 'server';
}

const NO_RECORDS: readonly Http2StreamRecord[] = Object.freeze([]);

interface Direction {
  reader: FrameReader;
  blocks: HeaderBlockAssembler;
  /** Decodes the header blocks this direction carries. */
  hpack: HpackDecoder;
  connectionFrames: number;
  untrackedFrames: number;
  streamFrames: number;
  /** Bytes not fed to the reader: the connection had desynced. */
  skippedAfterDesync: number;
  /** Frames the reader still delivered, in the chunk that desynced the connection. */
  framesAfterDesync: number;
}

export class Http2Connection {
  readonly #options: Http2ConnectionOptions;
  readonly #selected: ReadonlySet<string>;
  readonly #counters: Http2Counters | undefined;
  readonly #maxOpen: number;
  readonly #client: Direction;
  readonly #server: Direction;
  readonly #open = new Map<number, StreamState>();
  readonly #closed = new Set<number>();
  /** Open streams with no frame since a gap began (StreamState.quietSince set), in the order
   * they became so: quietSince never decreases along it. */
  readonly #quiet = new Map<number, StreamState>();
  /** Streams ended 'lost-in-gap': their frames may still come, long after (bounded like #closed). */
  readonly #endedInGaps = new Set<number>();
  /** The most streams open at once, those in #quiet left out. */
  #liveHighWater = 0;
  /** The server's SETTINGS_MAX_CONCURRENT_STREAMS (the largest sent), null until it sends one. */
  #serverMaxConcurrent: number | null = null;
  #maxClientStreamId = 0;
  /** The lowest stream seen opening with its HEADERS (mid-way, lower ones may predate the capture). */
  #lowestFullStart = Infinity;
  #out: Http2StreamRecord[] = [];
  desyncReason: FrameDesyncReason | 'bad-padding' | null = null;
  /** Why HPACK decoding stopped for the whole connection (both directions); null while it goes on. */
  hpackError: HpackError | null = null;
  /** Timestamp of the last chunk fed (idle expiry). */
  lastActivity = 0;
  /** A gap came in the capture (gap()): streams may now first show by any frame. */
  #gapped = false;

  constructor(options: Http2ConnectionOptions) {
    this.#options = options;
    this.#selected = new Set([...(options.selectedHeaders ?? [])].map((h) => h.toLowerCase()));
    this.#counters = options.counters;
    this.#maxOpen = options.maxOpenStreams ?? DEFAULT_MAX_OPEN_STREAMS;
    this.#client = this.#direction('client');
    this.#server = this.#direction('server');
    if (this.#counters) this.#counters.connections++;
    if (options.upgrade) this.#openUpgraded(options.upgrade);
  }

  get desynced(): boolean {
    return this.desyncReason !== null;
  }

  /** Streams under way. */
  get openStreams(): number {
    return this.#open.size;
  }

  /** The ids of the streams under way. */
  openStreamIds(): IterableIterator<number> {
    return this.#open.keys();
  }

  /**
   * Feeds a chunk `sender` sent: `chunk` holds its captured bytes, `total` its length on the
   * wire (larger when the capture kept only a prefix). Returns the streams that ended.
   */
  feed(sender: Http2Sender, chunk: Buffer, timestamp: number, total: number = chunk.length): readonly Http2StreamRecord[] {
    const dir = sender === 'client' ? this.#client : this.#server;
    this.lastActivity = Math.max(this.lastActivity, timestamp);
    if (this.desynced) dir.skippedAfterDesync += total;
    else dir.reader.feed(chunk, timestamp, total);
    if (dir.reader.desynced && !this.desynced) this.#desync(dir.reader.desyncReason!, timestamp);
    return this.#drain();
  }

  /**
   * Chunks `sender` sent never came (the kernel's full ring buffer refused them), and the next
   * chunk fed starts, after its uncaptured bytes, at a frame header. The frames under way are
   * dropped and reading goes on there. What the gap held is unknown: every open stream may
   * have lost frames (its record says so, its bytes are a lower bound, its end may never come
   * into view: then the connection's close, the idle timeout, or once the client has moved
   * well past it, 'lost-in-gap', ends it: GAP_SWEEP_FLOOR); streams begun and
   * ended in it show as client stream ids skipped; `hpackLost`: header blocks or SETTINGS were
   * in it, so HPACK decoding stops for the connection (counted as an HPACK desync).
   */
  gap(sender: Http2Sender, hpackLost: boolean): void {
    if (this.desynced) return;
    const dir = sender === 'client' ? this.#client : this.#server;
    dir.reader.resync();
    dir.blocks.forget();
    if (this.#counters) this.#counters.gaps++;
    this.otherSideGap();
    if (hpackLost) this.#stopHpack('capture-gap');
  }

  /**
   * The other direction lost chunks before the one about to be fed (its own gap() comes with
   * its next chunk): the streams under way lost frames, even those this chunk ends.
   */
  otherSideGap(): void {
    for (const stream of this.#open.values()) {
      stream.record.framesMissed = true;
      if (stream.quietSince < 0) {
        stream.quietSince = this.#maxClientStreamId;
        this.#quiet.set(stream.record.streamId, stream);
      }
    }
    this.#gapped = true;
  }

  /**
   * The connection closed (or its capture ended): open streams end as 'connection-closed'.
   * `maxClientStreamId`: the highest client stream id the capture saw a frame of, where known
   * (the kernel reads every frame header, those in lost records too): after a gap, the ids
   * above the last stream opened went by in a gap that lasted until the close.
   */
  close(timestamp: number, maxClientStreamId = 0): readonly Http2StreamRecord[] {
    if (this.#gapped && this.#counters && maxClientStreamId > this.#maxClientStreamId && maxClientStreamId % 2 === 1) {
      const next = this.#maxClientStreamId === 0 ? 1 : this.#maxClientStreamId + 2;
      this.#counters.streamIdsSkippedInGaps += (maxClientStreamId - next) / 2 + 1;
    }
    for (const stream of [...this.#open.values()]) this.#finish(stream, 'connection-closed', timestamp);
    return this.#drain();
  }

  /**
   * Nothing was seen on the connection for the caller's idle timeout (its close may never
   * come: the capture lost it): open streams end as 'idle-timeout', at their last activity.
   */
  expire(): readonly Http2StreamRecord[] {
    for (const stream of [...this.#open.values()]) this.#finish(stream, 'idle-timeout', this.lastActivity);
    return this.#drain();
  }

  accounting(sender: Http2Sender): Http2ByteAccounting {
    const dir = sender === 'client' ? this.#client : this.#server;
    const r = dir.reader;
    return {
      fed: r.bytesSeen + dir.skippedAfterDesync,
      preface: r.prefaceBytes,
      connectionFrames: dir.connectionFrames,
      untrackedFrames: dir.untrackedFrames,
      streamFrames: dir.streamFrames,
      pending: r.desynced ? 0 : r.pendingBytes,
      afterDesync: r.bytesAfterDesync + dir.skippedAfterDesync + dir.framesAfterDesync,
      inGaps: r.bytesInGaps,
    };
  }

  #direction(sender: Http2Sender): Direction {
    const connectionStart = this.#options.start === 'preface';
    return {
      reader: new FrameReader({ sender, connectionStart, wantPayload, onFrame: (frame) => this.#onFrame(sender, frame) }),
      blocks: new HeaderBlockAssembler(),
      hpack: new HpackDecoder({ tableKnown: connectionStart }),
      connectionFrames: 0,
      untrackedFrames: 0,
      streamFrames: 0,
      skippedAfterDesync: 0,
      framesAfterDesync: 0,
    };
  }

  #drain(): readonly Http2StreamRecord[] {
    if (this.#out.length === 0) return NO_RECORDS;
    const out = this.#out;
    this.#out = [];
    return out;
  }

  #desync(reason: FrameDesyncReason | 'bad-padding', timestamp: number): void {
    this.desyncReason = reason;
    if (this.#counters) this.#counters.frameDesyncs++;
    for (const stream of [...this.#open.values()]) this.#finish(stream, 'desync', timestamp);
  }

  #onFrame(sender: Http2Sender, frame: Http2Frame): void {
    const dir = sender === 'client' ? this.#client : this.#server;
    const bytes = 9 + frame.length;
    if (this.desynced) {
      dir.framesAfterDesync += bytes;
      return;
    }
    let block: HeaderBlock | null = null;
    if (frame.type === FrameType.HEADERS || frame.type === FrameType.PUSH_PROMISE || frame.type === FrameType.CONTINUATION) {
      const result = dir.blocks.add(frame);
      if (result === 'bad-padding') {
        // Counted with the frame it came in: the frame is whole, only its content is impossible.
        dir.untrackedFrames += bytes;
        this.#desync('bad-padding', frame.lastByteAt);
        return;
      }
      // A block whose start we never saw: the table may have changed in it.
      if (result === 'orphan-continuation') dir.hpack.forgetTable();
      else if (result !== 'pending') block = result;
    }
    if (frame.streamId === 0) {
      dir.connectionFrames += bytes;
      if (frame.type === FrameType.SETTINGS) this.#onSettings(sender, frame);
    } else {
      const stream = this.#streamFor(sender, frame);
      if (stream) {
        if (sender === 'client') stream.record.requestBytes += bytes;
        else stream.record.responseBytes += bytes;
        stream.lastFrameAt = frame.lastByteAt;
        if (stream.quietSince >= 0) {
          stream.quietSince = -1;
          this.#quiet.delete(frame.streamId);
        }
        dir.streamFrames += bytes;
        this.#options.onStreamFrame?.(sender, frame.streamId, bytes);
      } else {
        dir.untrackedFrames += bytes;
      }
    }
    // Every block is decoded, tracked stream or not: the dynamic table depends on all of them.
    if (block) this.#onBlock(sender, dir, block);
    const stream = this.#open.get(frame.streamId);
    if (!stream) return;
    if (frame.type === FrameType.RST_STREAM) {
      stream.record.resetBy = sender;
      stream.record.resetCode = frame.payload && frame.payload.length >= 4 ? frame.payload.readUInt32BE(0) : null;
      this.#finish(stream, 'reset', frame.lastByteAt);
    } else if (sender === 'server' && frame.type === FrameType.DATA && (frame.flags & FrameFlag.END_STREAM) !== 0) {
      this.#finish(stream, 'complete', frame.lastByteAt);
    }
  }

  /** The open stream a frame belongs to, opening one when the frame starts it; else null. */
  #streamFor(sender: Http2Sender, frame: Http2Frame): StreamState | null {
    const id = frame.streamId;
    const open = this.#open.get(id);
    if (open) return open;
    if (id % 2 === 0 || this.#closed.has(id) || this.#endedInGaps.has(id)) return null;
    const opensWithHeaders = sender === 'client' && frame.type === FrameType.HEADERS;
    const midway = this.#options.start === 'midway';
    const isNew = id > this.#maxClientStreamId || (midway && id < this.#lowestFullStart);
    // After a gap, a new stream's HEADERS may have been in one.
    const afterGap = this.#gapped && id > this.#maxClientStreamId;
    if (!isNew || (!opensWithHeaders && !midway && !afterGap)) return null;
    // Clients open streams in order: ids passed over went by in a gap (or were skipped).
    if (afterGap && this.#counters) this.#counters.streamIdsSkippedInGaps += (id - (this.#maxClientStreamId === 0 ? 1 : this.#maxClientStreamId + 2)) / 2;
    // Before the bound: ending the streams left behind makes room.
    if (this.#quiet.size > 0) this.#sweepGaps(id);
    if (this.#open.size >= this.#maxOpen) {
      if (this.#counters) this.#counters.streamsDropped++;
      return null;
    }
    // Mid-way, a stream first seen by anything but its request HEADERS began before the capture.
    // (A client HEADERS there may still be trailers: the stream record decides on its content.)
    const startMissed = (midway && (!opensWithHeaders || id < this.#lowestFullStart)) || (afterGap && !opensWithHeaders);
    const stream = new StreamState(id, frame.firstByteAt, startMissed);
    this.#open.set(id, stream);
    this.#maxClientStreamId = Math.max(this.#maxClientStreamId, id);
    if (opensWithHeaders && !midway) this.#lowestFullStart = Math.min(this.#lowestFullStart, id);
    this.#liveHighWater = Math.max(this.#liveHighWater, this.#open.size - this.#quiet.size);
    if (this.#counters) this.#counters.streams++;
    return stream;
  }

  /**
   * Client stream `newId` opens: the streams quiet since a gap after which the client opened
   * more streams than the threshold (GAP_SWEEP_FLOOR) end as 'lost-in-gap', at their last
   * frame. Oldest first, stopping at the first too recent: each call costs the streams it ends.
   */
  #sweepGaps(newId: number): void {
    const mcs = this.#serverMaxConcurrent;
    const capacity = mcs !== null && mcs > 0 && mcs <= this.#maxOpen ? Math.max(mcs, this.#liveHighWater) : this.#liveHighWater;
    // Streams opened since the gap: the client's ids above the highest seen then, two apart.
    const maxIdDistance = 2 * GAP_SWEEP_TURNOVERS * Math.max(GAP_SWEEP_FLOOR, capacity);
    for (const stream of this.#quiet.values()) {
      if (newId - stream.quietSince <= maxIdDistance) break;
      if (this.#counters) this.#counters.streamsEndedInGaps++;
      this.#finish(stream, 'lost-in-gap', stream.lastFrameAt);
    }
  }

  #onBlock(sender: Http2Sender, dir: Direction, block: HeaderBlock): void {
    const decoded = dir.hpack.decode(block.bytes, block.complete);
    if (this.#counters && !block.complete) this.#counters.truncatedHeaderBlocks++;
    // One direction's table out of sync: decoding stops for the connection, counted once.
    if (dir.hpack.error !== null) this.#stopHpack(dir.hpack.error);
    if (decoded && this.#options.onHeaderBlock) this.#options.onHeaderBlock(sender, block.streamId, decoded, block.bytes);
    // Pushed requests (PUSH_PROMISE) only matter to the table.
    if (block.type !== FrameType.HEADERS) return;
    const stream = this.#open.get(block.streamId);
    if (!stream) return;
    if (sender === 'client') {
      const wasMissed = stream.record.startMissed;
      stream.applyRequestBlock(decoded, this.#selected);
      // Mid-way, the first stream seen opening for real bounds the ones begun before.
      if (wasMissed && !stream.record.startMissed) this.#lowestFullStart = Math.min(this.#lowestFullStart, block.streamId);
    } else {
      stream.applyResponseBlock(decoded);
      if (block.endStream) this.#finish(stream, 'complete', block.lastByteAt);
    }
  }

  #stopHpack(error: HpackError): void {
    if (this.hpackError !== null) return;
    this.hpackError = error;
    this.#client.hpack.stop();
    this.#server.hpack.stop();
    if (this.#counters) this.#counters.hpackDesyncs++;
  }

  #onSettings(sender: Http2Sender, frame: Http2Frame): void {
    if ((frame.flags & FrameFlag.ACK) !== 0) return;
    // The sender's settings bind what the other side sends it.
    const other = sender === 'client' ? this.#server : this.#client;
    if (frame.payload === null || !frame.payloadComplete) {
      // Unknown settings: only the protocol's bounds still hold.
      other.reader.maxFrameSize = MAX_FRAME_SIZE_LIMIT;
      other.hpack.allowTableSize(MAX_TRACKED_TABLE_SIZE);
      return;
    }
    const settings = parseSettings(frame.payload);
    this.#applySettings(other, settings);
    if (sender !== 'server') return;
    // How many streams the client may open at once (the gap sweep's threshold): the largest sent.
    for (const { id, value } of settings) {
      if (id === SettingId.MAX_CONCURRENT_STREAMS) this.#serverMaxConcurrent = Math.max(this.#serverMaxConcurrent ?? 0, value);
    }
  }

  #applySettings(other: Direction, settings: Setting[]): void {
    for (const { id, value } of settings) {
      // Kept as the largest seen: a lower value only binds once acknowledged.
      if (id === SettingId.HEADER_TABLE_SIZE) other.hpack.allowTableSize(value);
      else if (id === SettingId.MAX_FRAME_SIZE) other.reader.maxFrameSize = Math.max(other.reader.maxFrameSize, Math.min(value, MAX_FRAME_SIZE_LIMIT));
    }
  }

  #openUpgraded(req: UpgradedRequest): void {
    // Stream 1 is the upgraded request, already sent whole (half-closed from the client).
    const stream = new StreamState(1, req.startTime, false);
    const r = stream.record;
    r.method = req.method;
    r.path = req.path;
    r.authority = req.authority;
    r.scheme = 'http';
    r.requestContentType = req.contentType;
    r.requestHeadersDecoded = 'full';
    for (const [name, value] of req.headers) if (this.#selected.has(name)) (r.requestHeaders as Map<string, string>).set(name, value);
    r.requestBytes = req.requestBytes;
    r.responseBytes = req.responseBytes;
    this.#open.set(1, stream);
    this.#maxClientStreamId = 1;
    this.#lowestFullStart = 1;
    if (this.#counters) this.#counters.streams++;
    const settings = req.http2Settings === null ? null : parseHttp2SettingsHeader(req.http2Settings);
    if (settings) this.#applySettings(this.#server, settings);
  }

  #finish(stream: StreamState, end: StreamEnd, timestamp: number): void {
    const id = stream.record.streamId;
    if (stream.record.framesMissed && this.#counters) this.#counters.streamsGapped++;
    this.#open.delete(id);
    if (stream.quietSince >= 0) this.#quiet.delete(id);
    rememberId(this.#closed, id);
    // Its frames may come long after (a quiet stream, not dead): never a second record.
    if (end === 'lost-in-gap') rememberId(this.#endedInGaps, id);
    this.#out.push(stream.finish(end, timestamp));
  }
}

/** Payloads read: header blocks, and the small control frames that change decoding or end streams. */
function wantPayload(type: number): boolean {
  return (
    type === FrameType.HEADERS ||
    type === FrameType.CONTINUATION ||
    type === FrameType.PUSH_PROMISE ||
    type === FrameType.SETTINGS ||
    type === FrameType.RST_STREAM
  );
}
