/**
 * HTTP/2 server connections (issue 12): the kernel's pc_h2_io records (bpf/h2.bpf.h) fed into
 * one src/http2/streams.ts assembler per connection, and each stream that ends turned into a
 * request (src/pipeline/h2-builder.ts).
 *
 * Bytes: every record's runs cover exactly the bytes its syscall moved (captured, then
 * skipped: DATA payloads, or everything once the kernel's walk stopped), so each run is fed as
 * a chunk captured in part; the frame reader desyncs where a frame header was not captured.
 *
 * CPU: a record's cpu_ns is the thread's on-CPU time since its previous tracked syscall,
 * charged here by where it ended, as the kernel does for HTTP/1:
 *   - a write: to the streams whose frames it carried (their handlers produced them);
 *   - a read, or a write of connection frames only: to the streams under way before it;
 *   - none under way: to no stream (`cpuUnattributedNs`).
 * One stream: `exact`; several: split evenly (the ns remainder to the first) and every one of
 * them `apportioned`. Nothing is lost: streams' CPU plus cpuUnattributedNs is every record's.
 */
import { Direction, H2Flags, RequestFlags } from '../decode/layout.ts';
import type { KernelH2Conn, KernelH2Io } from '../decode/records.ts';
import { newHttp2Counters, type Http2Counters } from '../http2/counters.ts';
import { Http2Connection, type Http2Sender, type Http2StreamRecord } from '../http2/streams.ts';
import { buildH2Request, type H2ConnMeta, type StreamCpu } from './h2-builder.ts';
import type { BuiltRequest, RequestBuilderOptions } from './request-builder.ts';

/** Connections followed at once; beyond, the oldest is closed (its open streams reported). */
const MAX_CONNECTIONS = 16_384;
/** A connection with nothing seen this long is dropped, its open streams ended as 'idle-timeout'
 * (its close may never come: a record the kernel lost, a process that exited without closing). */
export const H2_IDLE_TIMEOUT_NS = 10n * 60n * 1_000_000_000n;
/** How often (in kernel time, checked as records arrive) connections are looked at for that. */
const IDLE_SWEEP_EVERY_NS = 10n * 1_000_000_000n;

interface ConnState {
  meta: H2ConnMeta;
  conn: Http2Connection;
  /** Epoch ns that timestamps count from (numbers, for the assembler). */
  baseNs: bigint;
  /** Kernel time of its latest record (idle expiry). */
  lastNs: bigint;
  cpu: Map<number, StreamCpu>;
  /** Streams the current chunk's frames were charged to. */
  touched: Set<number>;
  /** The syscall under way (its records after the first carry no CPU). */
  pendingCpuNs: number;
  pendingWrite: boolean;
  pendingOpenBefore: number[];
  /** Streams the syscall under way ended: built once its last record is in (and its CPU charged). */
  pendingEnded: Http2StreamRecord[];
}

export interface H2PipelineCounters extends Http2Counters {
  /** pc_h2_io records for connections with no pc_h2_conn seen (then followed as mid-way). */
  connectionsUnannounced: number;
  /** Bytes of stream-0 frames (both directions), across connections. */
  connectionFrameBytes: number;
  /** Kernel records saying the walk had stopped (PC_H2F_LOST). */
  recordsLost: number;
  /** On-CPU ns of HTTP/2 syscalls charged to no stream (none was under way). */
  cpuUnattributedNs: number;
  /** Every HTTP/2 syscall's CPU (streams' plus unattributed). */
  cpuNs: number;
}

export class H2Requests {
  readonly #conns = new Map<number, ConnState>();
  readonly #options: RequestBuilderOptions;
  readonly #generation: number;
  readonly #selected: string[];
  readonly counters: H2PipelineCounters;
  readonly #idleTimeoutNs: bigint;
  #lastSweepNs = 0n;

  constructor(options: RequestBuilderOptions, generation: number, counters?: H2PipelineCounters, idleTimeoutNs = H2_IDLE_TIMEOUT_NS) {
    this.#options = options;
    this.#idleTimeoutNs = idleTimeoutNs;
    this.#generation = generation;
    this.#selected = [...options.correlation.headerNames, 'traceparent', 'user-agent'];
    this.counters = counters ?? newH2PipelineCounters();
  }

  /** The kernel detected an HTTP/2 connection. */
  open(rec: KernelH2Conn): BuiltRequest[] {
    const out: BuiltRequest[] = [];
    const old = this.#conns.get(rec.connId);
    if (old) this.#close(rec.connId, old, rec.startNs, out);
    this.#create(rec.connId, { ...rec, midway: (rec.flags & RequestFlags.H2_MIDWAY) !== 0 }, out);
    return out;
  }

  /** One pc_h2_io: the finished streams it produced. */
  io(rec: KernelH2Io): BuiltRequest[] {
    const out: BuiltRequest[] = [];
    let st = this.#conns.get(rec.connId);
    if (!st) {
      if (rec.flags & H2Flags.CLOSED) return out;
      this.counters.connectionsUnannounced++;
      st = this.#create(rec.connId, unannounced(rec), out);
    }
    if (rec.flags & H2Flags.CLOSED) {
      this.#close(rec.connId, st, rec.tsNs, out);
      return out;
    }
    if (rec.tsNs > st.lastNs) st.lastNs = rec.tsNs;
    if (rec.tsNs - this.#lastSweepNs >= IDLE_SWEEP_EVERY_NS) out.push(...this.expireIdle(rec.tsNs));
    if (rec.flags & H2Flags.LOST) this.counters.recordsLost++;
    const sender: Http2Sender = rec.direction === Direction.REQUEST ? 'client' : 'server';
    const ts = Number(rec.tsNs - st.baseNs);
    if (rec.part === 0) {
      st.pendingCpuNs = rec.cpuNs;
      st.pendingWrite = sender === 'server';
      st.pendingOpenBefore = [...st.conn.openStreamIds()];
      st.touched.clear();
    }
    for (const run of rec.runs) {
      const done = st.conn.feed(sender, run.bytes, ts, run.bytes.length + run.skipped);
      for (const r of done) st.pendingEnded.push(r);
    }
    if ((rec.flags & H2Flags.MORE) !== 0) return out;
    this.#chargeCpu(st);
    for (const r of st.pendingEnded) out.push(this.#build(st, r));
    st.pendingEnded = [];
    return out;
  }

  /**
   * Drops the connections with no record for the idle timeout before `nowNs` (kernel time):
   * their open streams become records ending 'idle-timeout' (incomplete, never 'complete'),
   * counted in streamsIdleExpired. A later record of such a connection starts it again as
   * joined mid-way (its HPACK tables unknown).
   */
  expireIdle(nowNs: bigint): BuiltRequest[] {
    this.#lastSweepNs = nowNs;
    const out: BuiltRequest[] = [];
    for (const [connId, st] of this.#conns) {
      if (nowNs - st.lastNs < this.#idleTimeoutNs) continue;
      this.#conns.delete(connId);
      this.#chargeCpu(st);
      for (const r of st.pendingEnded) out.push(this.#build(st, r));
      st.pendingEnded = [];
      const expired = st.conn.expire();
      this.counters.streamsIdleExpired += expired.length;
      this.counters.connectionsIdleExpired++;
      for (const r of expired) out.push(this.#build(st, r));
      for (const sender of ['client', 'server'] as const) this.counters.connectionFrameBytes += st.conn.accounting(sender).connectionFrames;
    }
    return out;
  }

  /** Streams still open, e.g. at shutdown. */
  get openConnections(): number {
    return this.#conns.size;
  }

  /** Total open streams across connections (a loader restart loses them). */
  openStreams(): number {
    let n = 0;
    for (const st of this.#conns.values()) n += st.conn.openStreams;
    return n;
  }

  #create(connId: number, meta: H2ConnMeta, out: BuiltRequest[]): ConnState {
    if (this.#conns.size >= MAX_CONNECTIONS) {
      const [oldestId, oldest] = this.#conns.entries().next().value!;
      this.#close(oldestId, oldest, meta.startNs, out);
    }
    const touched = new Set<number>();
    const st: ConnState = {
      meta,
      baseNs: meta.startNs,
      lastNs: meta.startNs,
      cpu: new Map(),
      touched,
      pendingCpuNs: 0,
      pendingWrite: false,
      pendingOpenBefore: [],
      pendingEnded: [],
      conn: new Http2Connection({
        start: meta.midway ? 'midway' : 'preface',
        selectedHeaders: this.#selected,
        counters: this.counters,
        onStreamFrame: (sender, streamId) => {
          if (sender === 'server') touched.add(streamId);
        },
      }),
    };
    this.#conns.set(connId, st);
    return st;
  }

  #close(connId: number, st: ConnState, tsNs: bigint, out: BuiltRequest[]): void {
    this.#conns.delete(connId);
    this.#chargeCpu(st);
    for (const r of st.pendingEnded) out.push(this.#build(st, r));
    st.pendingEnded = [];
    for (const r of st.conn.close(Number(tsNs - st.baseNs))) out.push(this.#build(st, r));
    for (const sender of ['client', 'server'] as const) this.counters.connectionFrameBytes += st.conn.accounting(sender).connectionFrames;
  }

  #chargeCpu(st: ConnState): void {
    const ns = st.pendingCpuNs;
    st.pendingCpuNs = 0;
    if (ns <= 0) return;
    this.counters.cpuNs += ns;
    let to: number[] = st.pendingWrite ? [...st.touched] : [];
    if (to.length === 0) to = st.pendingOpenBefore;
    if (to.length === 0) {
      this.counters.cpuUnattributedNs += ns;
      return;
    }
    const share = Math.floor(ns / to.length);
    let rest = ns - share * to.length;
    for (const id of to) {
      let c = st.cpu.get(id);
      if (!c) st.cpu.set(id, (c = { ns: 0, apportioned: false }));
      c.ns += share + rest;
      rest = 0;
      if (to.length > 1) c.apportioned = true;
    }
  }

  #build(st: ConnState, r: Http2StreamRecord): BuiltRequest {
    // CPU charged after a stream ended (a segment ending in its last write is charged with
    // that write, before this) stays with the stream only until it is built.
    const cpu = st.cpu.get(r.streamId) ?? { ns: 0, apportioned: false };
    st.cpu.delete(r.streamId);
    return buildH2Request(st.meta, r, st.baseNs, cpu, this.#options, this.#generation);
  }
}

export function newH2PipelineCounters(): H2PipelineCounters {
  return { ...newHttp2Counters(), connectionsUnannounced: 0, connectionFrameBytes: 0, recordsLost: 0, cpuUnattributedNs: 0, cpuNs: 0 };
}

/** A connection whose announcement was lost: followed as joined mid-way, addresses unknown. */
function unannounced(rec: KernelH2Io): H2ConnMeta {
  return {
    kind: 'h2_conn',
    flags: RequestFlags.H2_MIDWAY,
    pid: rec.pid,
    tid: rec.tid,
    connId: rec.connId,
    cgroupId: 0,
    startNs: rec.tsNs,
    endNs: rec.tsNs,
    cpuNs: 0,
    bytesReceived: 0,
    bytesSent: 0,
    rssBytes: 0,
    seq: 0,
    family: 0,
    localPort: 0,
    remotePort: 0,
    reqCaptured: 0,
    respCaptured: 0,
    localAddr: '',
    remoteAddr: '',
    comm: '',
    peerConnId: 0,
    cpuAfterResponseNs: 0,
    midway: true,
  };
}
