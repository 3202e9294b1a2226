/**
 * Joins kernel records into requests:
 *  - pc_data chunks (which arrive first) with the pc_request or pc_dependency they belong to;
 *  - pc_dependency records with the pc_request they were made for (they arrive first too);
 *  - request bytes across records of one connection: when a server read several pipelined
 *    requests in one batch, the first record counted all their bytes; HTTP framing moves
 *    the excess to the records that follow.
 * Memory is bounded: per open connection, only the current request's chunks and carry, and
 * all captures together within MAX_PENDING_BYTES (slow, incomplete requests cannot pile up).
 *
 * One assembler serves one loader generation (see LoaderProcess): connection ids are unique
 * only within it, so a restarted loader gets a new assembler and the old one's unfinished
 * work is counted as lost (inFlight()).
 */
import { Direction, RequestFlags } from '../decode/layout.ts';
import { OldestFirstMap } from '../util/bounded-map.ts';
import { exchangeKey } from '../util/exchange-key.ts';
import type { KernelData, KernelDependency, KernelRequest } from '../decode/records.ts';
import { requestLength } from '../http/framing.ts';

export interface Captured {
  /** Captured head of what the side we watch read (server: the request; client: the response). */
  requestHead: Buffer;
  responseHead: Buffer;
  /** Some captured bytes were lost or are missing. */
  captureIncomplete: boolean;
}

export interface AssembledDependency extends Captured {
  kernel: KernelDependency;
  /** The loader generation whose connection ids these are. */
  generation: number;
}

export interface AssembledRequest extends Captured {
  kernel: KernelRequest;
  generation: number;
  /** Request bytes after realigning pipelined batches (kernel.bytesReceived is the raw sum). */
  bytesReceived: number;
  dependencies: AssembledDependency[];
}

/**
 * One allocation holding the captures still pending at the end of a stdout chunk (detach()),
 * with the number of pending captures that still point into it.
 */
interface Slab {
  bytes: number;
  live: number;
}

interface PendingCapture {
  seq: number;
  /** Some chunks are still views into the loader's current stdout chunk (see detach()). */
  views: boolean;
  /** The slab its chunks were copied into, while they are there. */
  slab: Slab | null;
  request: Buffer[];
  requestBytes: number;
  response: Buffer[];
  responseBytes: number;
  gap: boolean;
}

/** Request bytes read by an earlier record but belonging to the next one. */
interface Carry {
  seq: number;
  head: Buffer;
  length: number;
}

const MAX_OPEN_CONNECTIONS = 65536;
/**
 * Captured bytes held for requests whose record has not come yet. 65,536 captures of a full
 * 4 KB head would be 300 MB outside the V8 heap; past this the oldest capture goes (counted).
 */
export const MAX_PENDING_BYTES = 32 * 1024 * 1024;
const MAX_PENDING_PARENTS = 65536;
const MAX_SPARE_CAPTURES = 1024;
/** Slab bytes of captures that ended, allowed at a chunk's end before the live ones are copied out. */
const SLAB_SLACK_BYTES = 4 * 1024 * 1024;
const EMPTY: Buffer = Buffer.alloc(0);

/** A copy with its own memory (a decoder view must not outlive its stdout chunk). */
function ownCopy(b: Buffer): Buffer {
  if (b.length === 0) return EMPTY;
  const copy = Buffer.allocUnsafeSlow(b.length);
  b.copy(copy);
  return copy;
}

function copyEach(parts: Buffer[]): void {
  for (let i = 0; i < parts.length; i++) parts[i] = ownCopy(parts[i]!);
}

/** Copies `parts` into `slab` from `at` on, each replaced by its copy; returns the end. */
function moveInto(parts: Buffer[], slab: Buffer, at: number): number {
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    part.copy(slab, at);
    parts[i] = slab.subarray(at, at + part.length);
    at += part.length;
  }
  return at;
}

function join(parts: Buffer[]): Buffer {
  return parts.length === 0 ? EMPTY : parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
}

export class RequestAssembler {
  readonly generation: number;
  private readonly pending = new OldestFirstMap<number, PendingCapture>();
  private pendingBytes = 0;
  /** Bytes of the slabs (detach()) that pending captures still point into. */
  private slabBytes = 0;
  private readonly maxPendingBytes: number;
  private readonly carries = new OldestFirstMap<number, Carry>();
  private readonly depsByParent = new OldestFirstMap<string, AssembledDependency[]>();
  /** Chunks thrown away because their record never came. */
  orphanedChunks = 0;
  /** Dependencies whose parent request record never came (evicted). */
  orphanedDependencies = 0;
  /** Captures evicted to keep within MAX_PENDING_BYTES. */
  capturesEvictedForBytes = 0;
  /** Captures holding views into the current stdout chunk, copied by detach(). */
  private attached: PendingCapture[] = [];
  /**
   * Finished captures kept for reuse: a capture often lives across a drained batch, long
   * enough to be promoted to the old generation, so a new one per request churned it.
   */
  private readonly spare: PendingCapture[] = [];

  constructor(generation = 0, maxPendingBytes = MAX_PENDING_BYTES) {
    this.generation = generation;
    this.maxPendingBytes = maxPendingBytes;
  }

  addData(d: KernelData): void {
    let p = this.pending.get(d.connId);
    if (p && p.seq !== d.seq) {
      // The previous request on this connection never produced a record (dropped in the
      // kernel): its chunks are orphans.
      this.orphanedChunks += p.request.length + p.response.length;
      this.drop(d.connId, p);
      p = undefined;
    }
    if (!p) {
      if (this.pending.size >= MAX_OPEN_CONNECTIONS) this.evictOldestCapture();
      p = this.spare.pop() ?? { seq: 0, views: false, slab: null, request: [], requestBytes: 0, response: [], responseBytes: 0, gap: false };
      p.seq = d.seq;
      this.pending.set(d.connId, p);
    }
    // The decoder's view, valid while the frame is handled: most requests complete within the
    // stdout chunk their captures came in, so only captures still pending at its end are
    // copied (detach()). A copy per chunk was a new ArrayBuffer each, half of what the agent
    // promoted to the old generation at 5,000 req/s.
    const bytes = d.bytes;
    if (!p.views) {
      p.views = true;
      // Bounded for a caller that never calls detach(): copying early is always safe.
      if (this.attached.length >= MAX_OPEN_CONNECTIONS) this.detach();
      this.attached.push(p);
    }
    if (d.direction === Direction.REQUEST) {
      if (d.offset !== p.requestBytes) p.gap = true;
      p.request.push(bytes);
      p.requestBytes += bytes.length;
    } else {
      if (d.offset !== p.responseBytes) p.gap = true;
      p.response.push(bytes);
      p.responseBytes += bytes.length;
    }
    this.pendingBytes += bytes.length;
    while (this.pendingBytes > this.maxPendingBytes && this.pending.size > 1) {
      this.evictOldestCapture();
      this.capturesEvictedForBytes++;
    }
  }

  /**
   * Gives the captures still pending their own memory: called once the stdout chunk their
   * views point into is handled (FrameReader.push), as a view would pin that whole chunk (up
   * to 64 KB) for as long as the request stays incomplete.
   */
  detach(): void {
    // One slab for all of them: an allocation per capture (an ArrayBuffer each) was a tenth
    // of the main thread at 1,000 req/s, where each 50 ms chunk carries about as many
    // requests as there are keep-alive connections, each with its next request pending.
    let total = 0;
    for (const p of this.attached) if (p.views) total += p.requestBytes + p.responseBytes;
    if (total > 0) {
      const buf = Buffer.allocUnsafeSlow(total);
      const slab: Slab = { bytes: total, live: 0 };
      let at = 0;
      for (const p of this.attached) {
        if (!p.views) continue; // completed or dropped since
        p.views = false;
        // Its chunks from an earlier slab move too: a capture points into one slab at most.
        at = moveInto(p.response, buf, moveInto(p.request, buf, at));
        this.releaseSlab(p);
        p.slab = slab;
        slab.live++;
      }
      this.slabBytes += total;
    }
    this.attached.length = 0;
    // A slab lives until its last capture ends: a few slow requests could pin the bytes of
    // many that ended. Past SLAB_SLACK_BYTES of such dead bytes, the captures still in slabs
    // get their own memory (rare: slabs mostly end within a chunk or two). Checked at each
    // chunk's end; in between, what ends since adds to the dead bytes.
    if (this.slabBytes > this.pendingBytes + SLAB_SLACK_BYTES) {
      for (const p of this.pending.values()) {
        if (p.slab === null) continue;
        copyEach(p.request);
        copyEach(p.response);
        this.releaseSlab(p);
      }
    }
  }

  private releaseSlab(p: PendingCapture): void {
    const slab = p.slab;
    if (slab === null) return;
    p.slab = null;
    if (--slab.live === 0) this.slabBytes -= slab.bytes;
  }

  /** Bytes of slabs still pinned by pending captures (bounded by detach()). */
  get slabHeldBytes(): number {
    return this.slabBytes;
  }

  /** Forgets a pending capture, and its bytes. */
  private drop(connId: number, p: PendingCapture): void {
    p.views = false;
    this.releaseSlab(p);
    this.pendingBytes -= p.requestBytes + p.responseBytes;
    this.pending.delete(connId);
    if (this.spare.length < MAX_SPARE_CAPTURES) {
      p.request.length = 0;
      p.response.length = 0;
      p.requestBytes = 0;
      p.responseBytes = 0;
      p.gap = false;
      this.spare.push(p);
    }
  }

  /**
   * Work this assembler will never finish once its loader is gone: captures whose request
   * or exchange record never came, pipelined requests carried to a record that never came,
   * and dependencies waiting for their parent request.
   */
  inFlight(): { records: number; dependencies: number } {
    let dependencies = 0;
    for (const list of this.depsByParent.values()) dependencies += list.length;
    return { records: this.pending.size + this.carries.size, dependencies };
  }

  get heldBytes(): number {
    return this.pendingBytes;
  }

  /** Takes the captured chunks of (connId, seq). */
  private takeCapture(connId: number, seq: number, reqCaptured: number, respCaptured: number): Captured {
    const p = this.pending.get(connId);
    let requestHead = EMPTY;
    let responseHead = EMPTY;
    let gap = false;
    if (p && p.seq === seq) {
      requestHead = join(p.request);
      responseHead = join(p.response);
      gap = p.gap;
      this.drop(connId, p);
    } else if (p && p.seq < seq) {
      this.orphanedChunks += p.request.length + p.response.length;
      this.drop(connId, p);
    }
    const captureIncomplete = gap || requestHead.length !== reqCaptured || responseHead.length !== respCaptured;
    return { requestHead, responseHead, captureIncomplete };
  }

  /**
   * An outbound exchange. Returns it when its parent request was already completed (a late
   * dependency); otherwise keeps it for the parent and returns null.
   */
  addDependency(d: KernelDependency, parentCompleted: (parentConnId: number, parentSeq: number) => boolean): AssembledDependency | null {
    // Client side: "request" is what the process wrote, "response" what it read.
    const dep: AssembledDependency = {
      kernel: d,
      generation: this.generation,
      ...this.takeCapture(d.connId, d.seq, d.reqCaptured, d.respCaptured),
    };
    const parentKey = exchangeKey(this.generation, d.parentConnId, d.parentSeq);
    if (parentCompleted(d.parentConnId, d.parentSeq)) return dep;
    let list = this.depsByParent.get(parentKey);
    if (!list) {
      if (this.depsByParent.size >= MAX_PENDING_PARENTS) this.evictOldestParent();
      list = [];
      this.depsByParent.set(parentKey, list);
    }
    // It waits beyond this stdout chunk: its own copies of the captured bytes.
    dep.requestHead = ownCopy(dep.requestHead);
    dep.responseHead = ownCopy(dep.responseHead);
    list.push(dep);
    return null;
  }

  /** Closes a request: its captured bytes, its dependencies, its realigned byte count. */
  completeRequest(k: KernelRequest): AssembledRequest {
    const captured = this.takeCapture(k.connId, k.seq, k.reqCaptured, k.respCaptured);
    let head = captured.requestHead;
    let total = k.bytesReceived;
    let incomplete = captured.captureIncomplete;

    // Most connections never pipeline: no lookup (and no delete) while nothing is carried.
    const carry = this.carries.size > 0 ? this.carries.get(k.connId) : undefined;
    if (carry !== undefined) this.carries.delete(k.connId);
    if (carry && carry.seq === k.seq - 1) {
      total += carry.length;
      if (carry.head.length === carry.length) head = head.length ? Buffer.concat([carry.head, head]) : carry.head;
      else incomplete = true; // the carried bytes were beyond the capture: head unknown
    } else if (k.flags & RequestFlags.PIPELINED) {
      incomplete = true; // its bytes were in a record we could not split
    }

    let bytesReceived = total;
    const length = head.length ? requestLength(head) : null;
    if (length !== null && length < total && !(k.flags & RequestFlags.CONN_CLOSED)) {
      bytesReceived = length;
      if (this.carries.size >= MAX_OPEN_CONNECTIONS) this.carries.shift();
      this.carries.set(k.connId, { seq: k.seq, head: ownCopy(head.subarray(Math.min(length, head.length))), length: total - length });
      head = head.subarray(0, Math.min(length, head.length));
    }

    let deps: AssembledDependency[] = [];
    // Most servers make no outbound calls: no key to build and look up then.
    if (this.depsByParent.size > 0) {
      const key = exchangeKey(this.generation, k.connId, k.seq);
      deps = this.depsByParent.get(key) ?? deps;
      this.depsByParent.delete(key);
    }
    return {
      kernel: k,
      generation: this.generation,
      requestHead: head,
      responseHead: captured.responseHead,
      captureIncomplete: incomplete,
      bytesReceived,
      dependencies: deps,
    };
  }

  private evictOldestCapture(): void {
    const oldest = this.pending.shift();
    if (oldest === undefined) return;
    const [connId, p] = oldest;
    this.orphanedChunks += p.request.length + p.response.length;
    this.drop(connId, p);
  }

  private evictOldestParent(): void {
    this.orphanedDependencies += this.depsByParent.shift()?.[1].length ?? 0;
  }
}
