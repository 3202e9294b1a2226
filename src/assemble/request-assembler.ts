/**
 * Joins the pc_data chunks of a request (which arrive first) with its pc_request record.
 * Only the current request of each connection holds chunks, so memory is bounded by
 * connections x capture size, and by MAX_OPEN_CONNECTIONS overall.
 */
import { Direction } from '../decode/layout.ts';
import type { KernelData, KernelRequest } from '../decode/records.ts';

export interface AssembledRequest {
  kernel: KernelRequest;
  /** Captured head of the request bytes (up to the capture size). */
  requestHead: Buffer;
  /** Captured head of the response bytes. */
  responseHead: Buffer;
  /** Some captured bytes were lost or arrived out of order. */
  captureIncomplete: boolean;
}

interface PendingCapture {
  seq: number;
  request: Buffer[];
  requestBytes: number;
  response: Buffer[];
  responseBytes: number;
  gap: boolean;
}

const MAX_OPEN_CONNECTIONS = 65536;

export class RequestAssembler {
  private readonly pending = new Map<bigint, PendingCapture>();
  /** Chunks thrown away because their request record never came (or came first). */
  orphanedChunks = 0;

  addData(d: KernelData): void {
    let p = this.pending.get(d.connId);
    if (p && p.seq !== d.seq) {
      // The previous request on this connection never produced a record (dropped in the
      // kernel): its chunks are orphans.
      this.orphanedChunks += p.request.length + p.response.length;
      p = undefined;
    }
    if (!p) {
      if (this.pending.size >= MAX_OPEN_CONNECTIONS) this.evictOldest();
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

  /** Closes a request: returns it with its captured bytes and forgets them. */
  complete(k: KernelRequest): AssembledRequest {
    const p = this.pending.get(k.connId);
    let requestHead: Buffer = EMPTY;
    let responseHead: Buffer = EMPTY;
    let gap = false;
    if (p && p.seq === k.seq) {
      requestHead = p.request.length === 1 ? (p.request[0] as Buffer) : Buffer.concat(p.request);
      responseHead = p.response.length === 1 ? (p.response[0] as Buffer) : Buffer.concat(p.response);
      gap = p.gap;
      this.pending.delete(k.connId);
    } else if (p && p.seq < k.seq) {
      this.orphanedChunks += p.request.length + p.response.length;
      this.pending.delete(k.connId);
    }
    const captureIncomplete =
      gap || requestHead.length !== k.reqCaptured || responseHead.length !== k.respCaptured;
    return { kernel: k, requestHead, responseHead, captureIncomplete };
  }

  get openConnections(): number {
    return this.pending.size;
  }

  private evictOldest(): void {
    const oldest = this.pending.keys().next();
    if (oldest.done) return;
    const p = this.pending.get(oldest.value);
    if (p) this.orphanedChunks += p.request.length + p.response.length;
    this.pending.delete(oldest.value);
  }
}

const EMPTY: Buffer = Buffer.alloc(0);
