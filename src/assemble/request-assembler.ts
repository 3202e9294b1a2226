/**
 * Joins kernel records into requests:
 *  - pc_data chunks (which arrive first) with the pc_request or pc_dependency they belong to;
 *  - pc_dependency records with the pc_request they were made for (they arrive first too);
 *  - request bytes across records of one connection: when a server read several pipelined
 *    requests in one batch, the first record counted all their bytes; HTTP framing moves
 *    the excess to the records that follow.
 * Memory is bounded: per open connection, only the current request's chunks and carry.
 */
import { Direction, RequestFlags } from '../decode/layout.ts';
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
}

export interface AssembledRequest extends Captured {
  kernel: KernelRequest;
  /** Request bytes after realigning pipelined batches (kernel.bytesReceived is the raw sum). */
  bytesReceived: number;
  dependencies: AssembledDependency[];
}

interface PendingCapture {
  seq: number;
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
const MAX_PENDING_PARENTS = 65536;
const EMPTY: Buffer = Buffer.alloc(0);

function join(parts: Buffer[]): Buffer {
  return parts.length === 0 ? EMPTY : parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
}

export class RequestAssembler {
  private readonly pending = new Map<number, PendingCapture>();
  private readonly carries = new Map<number, Carry>();
  private readonly depsByParent = new Map<string, AssembledDependency[]>();
  /** Chunks thrown away because their record never came. */
  orphanedChunks = 0;
  /** Dependencies whose parent request record never came (evicted). */
  orphanedDependencies = 0;

  addData(d: KernelData): void {
    let p = this.pending.get(d.connId);
    if (p && p.seq !== d.seq) {
      // The previous request on this connection never produced a record (dropped in the
      // kernel): its chunks are orphans.
      this.orphanedChunks += p.request.length + p.response.length;
      p = undefined;
    }
    if (!p) {
      if (this.pending.size >= MAX_OPEN_CONNECTIONS) this.evictOldestCapture();
      p = { seq: d.seq, request: [], requestBytes: 0, response: [], responseBytes: 0, gap: false };
      this.pending.set(d.connId, p);
    }
    if (d.direction === Direction.REQUEST) {
      if (d.offset !== p.requestBytes) p.gap = true;
      p.request.push(d.bytes);
      p.requestBytes += d.bytes.length;
    } else {
      if (d.offset !== p.responseBytes) p.gap = true;
      p.response.push(d.bytes);
      p.responseBytes += d.bytes.length;
    }
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
      this.pending.delete(connId);
    } else if (p && p.seq < seq) {
      this.orphanedChunks += p.request.length + p.response.length;
      this.pending.delete(connId);
    }
    const captureIncomplete = gap || requestHead.length !== reqCaptured || responseHead.length !== respCaptured;
    return { requestHead, responseHead, captureIncomplete };
  }

  /**
   * An outbound exchange. Returns it when its parent request was already completed (a late
   * dependency); otherwise keeps it for the parent and returns null.
   */
  addDependency(d: KernelDependency, parentCompleted: (parentKey: string) => boolean): AssembledDependency | null {
    // Client side: "request" is what the process wrote, "response" what it read.
    const dep: AssembledDependency = { kernel: d, ...this.takeCapture(d.connId, d.seq, d.reqCaptured, d.respCaptured) };
    const parentKey = `${d.parentConnId}:${d.parentSeq}`;
    if (parentCompleted(parentKey)) return dep;
    let list = this.depsByParent.get(parentKey);
    if (!list) {
      if (this.depsByParent.size >= MAX_PENDING_PARENTS) this.evictOldestParent();
      list = [];
      this.depsByParent.set(parentKey, list);
    }
    list.push(dep);
    return null;
  }

  /** Closes a request: its captured bytes, its dependencies, its realigned byte count. */
  completeRequest(k: KernelRequest): AssembledRequest {
    const captured = this.takeCapture(k.connId, k.seq, k.reqCaptured, k.respCaptured);
    let head = captured.requestHead;
    let total = k.bytesReceived;
    let incomplete = captured.captureIncomplete;

    const carry = this.carries.get(k.connId);
    this.carries.delete(k.connId);
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
      if (this.carries.size >= MAX_OPEN_CONNECTIONS) {
        const oldest = this.carries.keys().next();
        if (!oldest.done) this.carries.delete(oldest.value);
      }
      this.carries.set(k.connId, { seq: k.seq, head: head.subarray(Math.min(length, head.length)), length: total - length });
      head = head.subarray(0, Math.min(length, head.length));
    }

    const deps = this.depsByParent.get(`${k.connId}:${k.seq}`) ?? [];
    this.depsByParent.delete(`${k.connId}:${k.seq}`);
    return {
      kernel: k,
      requestHead: head,
      responseHead: captured.responseHead,
      captureIncomplete: incomplete,
      bytesReceived,
      dependencies: deps,
    };
  }

  get openConnections(): number {
    return this.pending.size;
  }

  private evictOldestCapture(): void {
    const oldest = this.pending.keys().next();
    if (oldest.done) return;
    const p = this.pending.get(oldest.value);
    if (p) this.orphanedChunks += p.request.length + p.response.length;
    this.pending.delete(oldest.value);
  }

  private evictOldestParent(): void {
    const oldest = this.depsByParent.keys().next();
    if (oldest.done) return;
    this.orphanedDependencies += this.depsByParent.get(oldest.value)?.length ?? 0;
    this.depsByParent.delete(oldest.value);
  }
}
