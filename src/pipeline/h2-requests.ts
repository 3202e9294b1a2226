/**
 * HTTP/2 connections (issue 12): the kernel's pc_h2_io records (bpf/h2.bpf.h) fed into one
 * src/http2/streams.ts assembler per connection. On a server connection each stream that ends
 * becomes a request (src/pipeline/h2-builder.ts); on an outbound one (PC_F_H2_CLIENT) each
 * becomes a dependency of the served stream that made the call (src/pipeline/h2-callers.ts,
 * h2-dependency-builder.ts), joined to it before it is built, or late when it already was.
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
 * On an outbound connection, "the streams" are the served streams that made those calls.
 * One stream: `exact`; several: split evenly (the ns remainder to the first) and every one of
 * them `apportioned`. Nothing is lost: streams' CPU plus cpuUnattributedNs is every record's.
 */
import { Direction, H2Flags, RequestFlags } from '../decode/layout.ts';
import type { KernelH2Conn, KernelH2Io } from '../decode/records.ts';
import { newHttp2Counters, type Http2Counters } from '../http2/counters.ts';
import { Http2Connection, type Http2Sender, type Http2StreamRecord, type UpgradedRequest } from '../http2/streams.ts';
import { buildH2Request, type H2ConnMeta, type StreamCpu } from './h2-builder.ts';
import { H2Callers, type CallerChoice } from './h2-callers.ts';
import { Http1Callers, type Http1CallerChoice, type Http1Served, type UnclaimedCall } from './h2-http1-callers.ts';
import { buildH2Dependency } from './h2-dependency-builder.ts';
import type { BuiltDependency } from './dependency-builder.ts';
import type { BuiltRequest, RequestBuilderOptions } from './request-builder.ts';
import { exchangeKey } from '../util/exchange-key.ts';

/** Connections followed at once; beyond, the oldest is closed (its open streams reported). */
const MAX_CONNECTIONS = 16_384;
/** A connection with nothing seen this long is dropped, its open streams ended as 'idle-timeout'
 * (its close may never come: a record the kernel lost, a process that exited without closing). */
export const H2_IDLE_TIMEOUT_NS = 10n * 60n * 1_000_000_000n;
/** How often (in kernel time, checked as records arrive) connections are looked at for that. */
const IDLE_SWEEP_EVERY_NS = 10n * 1_000_000_000n;

/** Calls ended before the stream that made them, waiting for it; beyond, the oldest are orphaned. */
const MAX_WAITING_CALLS = 65_536;

/** What records produced: finished server streams, and calls whose caller was already built. */
export interface H2Output {
  requests: BuiltRequest[];
  late: LateCall[];
}

export interface LateCall {
  dependency: BuiltDependency;
  /** exchangeKey() of the served stream that made it. */
  parentKey: string;
}

interface ConnState {
  meta: H2ConnMeta;
  role: 'server' | 'client';
  /** Outbound: the served stream each call was made for, by the call's stream id. */
  callers: Map<number, CallerChoice>;
  /** Outbound: the thread that sent each call no served stream claimed (its caller may be an HTTP/1 request). */
  uncalledTids: Map<number, number>;
  /** The thread of the record being fed. */
  ioTid: number;
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
  /** Outbound streams reported as dependencies. */
  calls: number;
  /** Outbound streams made while no served stream of the process was under way: not reported. */
  callsUnattributed: number;
  /** Outbound streams whose caller's record was gone (or the waiting list full): not reported. */
  callsOrphaned: number;
}

/** An outbound stream no served HTTP/2 stream claimed, as it waits for an HTTP/1 caller. */
interface UncalledStream {
  meta: H2ConnMeta;
  record: Http2StreamRecord;
  baseNs: bigint;
}

export class H2Requests {
  readonly #conns = new Map<number, ConnState>();
  readonly #callers = new H2Callers();
  readonly #http1Callers: Http1Callers<UncalledStream>;
  readonly #onLateCall: (late: LateCall) => void;
  /** Calls that ended before their caller, by the caller's exchangeKey(). */
  readonly #waitingCalls = new Map<string, BuiltDependency[]>();
  #waitingCount = 0;
  /** Whether a caller's record was built already (a late call joins it there). */
  readonly #isBuilt: (parentKey: string) => boolean;
  readonly #options: RequestBuilderOptions;
  readonly #generation: number;
  readonly #selected: string[];
  readonly counters: H2PipelineCounters;
  readonly #idleTimeoutNs: bigint;
  #lastSweepNs = 0n;

  constructor(
    options: RequestBuilderOptions,
    generation: number,
    counters?: H2PipelineCounters,
    isBuilt: (parentKey: string) => boolean = () => false,
    idleTimeoutNs = H2_IDLE_TIMEOUT_NS,
    /** Where a call settled on an HTTP/1 caller goes (h2-http1-callers.ts): its request is finished by then. */
    onLateCall: (late: LateCall) => void = () => {},
  ) {
    this.#onLateCall = onLateCall;
    this.#http1Callers = new Http1Callers((c, caller) => this.#settleHttp1Call(c, caller));
    this.#isBuilt = isBuilt;
    this.#options = options;
    this.#idleTimeoutNs = idleTimeoutNs;
    this.#generation = generation;
    this.#selected = [...options.correlation.headerNames, 'traceparent', 'user-agent'];
    this.counters = counters ?? newH2PipelineCounters();
  }

  /** The kernel detected an HTTP/2 connection; `upgrade`: the h2c request that became stream 1. */
  open(rec: KernelH2Conn, upgrade?: UpgradedRequest): H2Output {
    const out: H2Output = { requests: [], late: [] };
    const old = this.#conns.get(rec.connId);
    if (old) this.#close(rec.connId, old, rec.startNs, out);
    const role = rec.flags & RequestFlags.H2_CLIENT ? 'client' : 'server';
    this.#create(rec.connId, { ...rec, midway: (rec.flags & RequestFlags.H2_MIDWAY) !== 0 }, role, out, upgrade);
    return out;
  }

  /** One pc_h2_io: the finished streams it produced. */
  io(rec: KernelH2Io): H2Output {
    const out: H2Output = { requests: [], late: [] };
    let st = this.#conns.get(rec.connId);
    if (!st) {
      if (rec.flags & H2Flags.CLOSED) return out;
      this.counters.connectionsUnannounced++;
      st = this.#create(rec.connId, unannounced(rec), rec.flags & H2Flags.CLIENT ? 'client' : 'server', out);
    }
    if (rec.flags & H2Flags.CLOSED) {
      // Records lost just before the close: the streams under way lost frames.
      if (rec.flags & H2Flags.GAP) st.conn.otherSideGap();
      this.#close(rec.connId, st, rec.tsNs, out, rec.total);
      return out;
    }
    if (rec.tsNs > st.lastNs) st.lastNs = rec.tsNs;
    if (rec.tsNs - this.#lastSweepNs >= IDLE_SWEEP_EVERY_NS) this.expireIdle(rec.tsNs, out);
    if (rec.flags & H2Flags.LOST) this.counters.recordsLost++;
    const sender: Http2Sender = rec.direction === Direction.REQUEST ? 'client' : 'server';
    const ts = Number(rec.tsNs - st.baseNs);
    // Records before this one were lost; the kernel walked on: resume at its next frame header.
    if (rec.flags & H2Flags.GAP) st.conn.gap(sender, (rec.flags & H2Flags.GAP_HPACK) !== 0);
    if (rec.flags & H2Flags.GAP_OTHER) st.conn.otherSideGap();
    st.ioTid = rec.tid;
    if (rec.part === 0) {
      st.pendingCpuNs = rec.cpuNs;
      // The process's own writes: the server's frames on a server connection, the client's on an outbound one.
      st.pendingWrite = sender === (st.role === 'server' ? 'server' : 'client');
      st.pendingOpenBefore = [...st.conn.openStreamIds()];
      st.touched.clear();
    }
    for (const run of rec.runs) {
      const done = st.conn.feed(sender, run.bytes, ts, run.bytes.length + run.skipped);
      for (const r of done) st.pendingEnded.push(r);
    }
    if ((rec.flags & H2Flags.MORE) !== 0) return out;
    this.#chargeCpu(st);
    for (const r of st.pendingEnded) this.#build(st, r, out);
    st.pendingEnded = [];
    return out;
  }

  /**
   * Drops the connections with no record for the idle timeout before `nowNs` (kernel time):
   * their open streams become records ending 'idle-timeout' (incomplete, never 'complete'),
   * counted in streamsIdleExpired. A later record of such a connection starts it again as
   * joined mid-way (its HPACK tables unknown).
   */
  expireIdle(nowNs: bigint, out: H2Output = { requests: [], late: [] }): H2Output {
    this.#lastSweepNs = nowNs;
    for (const [connId, st] of this.#conns) {
      if (nowNs - st.lastNs < this.#idleTimeoutNs) continue;
      this.#conns.delete(connId);
      this.#chargeCpu(st);
      for (const r of st.pendingEnded) this.#build(st, r, out);
      st.pendingEnded = [];
      const expired = st.conn.expire();
      this.counters.streamsIdleExpired += expired.length;
      this.counters.connectionsIdleExpired++;
      for (const r of expired) this.#build(st, r, out);
      for (const sender of ['client', 'server'] as const) this.counters.connectionFrameBytes += st.conn.accounting(sender).connectionFrames;
    }
    return out;
  }

  /**
   * An HTTP/1 request ended: outbound calls of its process made in its window may be its.
   * Kept only for processes with outbound HTTP/2 connections (the rest cost one Set lookup).
   */
  http1Served(pid: number, connId: number, seq: number, tid: number, startNs: bigint, endNs: bigint): void {
    if (!this.#http1Callers.watches(pid)) return;
    this.#http1Callers.served(pid, { connKey: exchangeKey(this.#generation, connId, seq), tid, startNs, endNs });
  }

  /** Settles the calls waiting for an HTTP/1 caller now (shutdown). */
  flushHttp1Callers(): void {
    this.#http1Callers.flush();
  }

  #settleHttp1Call(c: UnclaimedCall<UncalledStream>, caller: Http1CallerChoice | null): void {
    if (!caller) {
      this.counters.callsUnattributed++;
      return;
    }
    const { meta, record, baseNs } = c.call;
    this.#onLateCall({ dependency: buildH2Dependency(meta, record, baseNs, caller.inferred, this.#generation, this.#options.keepQuery), parentKey: caller.connKey });
  }

  /** Streams still open, e.g. at shutdown. */
  get openConnections(): number {
    return this.#conns.size;
  }

  /** Open streams across connections, and calls waiting for their caller (a loader restart loses them). */
  openStreams(): number {
    let n = this.#waitingCount;
    for (const st of this.#conns.values()) n += st.conn.openStreams;
    return n;
  }

  #create(connId: number, meta: H2ConnMeta, role: 'server' | 'client', out: H2Output, upgrade?: UpgradedRequest): ConnState {
    if (this.#conns.size >= MAX_CONNECTIONS) {
      const [oldestId, oldest] = this.#conns.entries().next().value!;
      this.#close(oldestId, oldest, meta.startNs, out);
    }
    const touched = new Set<number>();
    const callers = new Map<number, CallerChoice>();
    const uncalledTids = new Map<number, number>();
    if (role === 'client') this.#http1Callers.watch(meta.pid);
    const pid = meta.pid;
    const st: ConnState = {
      meta,
      role,
      callers,
      uncalledTids,
      ioTid: meta.tid,
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
        ...(upgrade ? { upgrade } : {}),
        selectedHeaders: this.#selected,
        counters: this.counters,
        onStreamFrame: (sender, streamId) => {
          if (role === 'server') {
            if (sender === 'server') touched.add(streamId);
            else this.#callers.begin(pid, connId, streamId);
            return;
          }
          if (sender !== 'client') return;
          touched.add(streamId);
          // A call's first frame (its HEADERS) leaves: which served stream is it for?
          if (!callers.has(streamId)) {
            const caller = this.#callers.pick(pid);
            if (caller) callers.set(streamId, caller);
            else {
              callers.set(streamId, NO_CALLER);
              uncalledTids.set(streamId, st.ioTid);
            }
          }
        },
      }),
    };
    if (upgrade && role === 'server') this.#callers.begin(pid, connId, 1);
    this.#conns.set(connId, st);
    return st;
  }

  #close(connId: number, st: ConnState, tsNs: bigint, out: H2Output, maxClientStreamId = 0): void {
    this.#conns.delete(connId);
    this.#chargeCpu(st);
    for (const r of st.pendingEnded) this.#build(st, r, out);
    st.pendingEnded = [];
    for (const r of st.conn.close(Number(tsNs - st.baseNs), maxClientStreamId)) this.#build(st, r, out);
    for (const sender of ['client', 'server'] as const) this.counters.connectionFrameBytes += st.conn.accounting(sender).connectionFrames;
  }

  #chargeCpu(st: ConnState): void {
    const ns = st.pendingCpuNs;
    st.pendingCpuNs = 0;
    if (ns <= 0) return;
    this.counters.cpuNs += ns;
    let ids: number[] = st.pendingWrite ? [...st.touched] : [];
    if (ids.length === 0) ids = st.pendingOpenBefore;
    const to = this.#cpuTargets(st, ids);
    if (to.length === 0) {
      this.counters.cpuUnattributedNs += ns;
      return;
    }
    const share = Math.floor(ns / to.length);
    let rest = ns - share * to.length;
    for (const { conn, streamId } of to) {
      let c = conn.cpu.get(streamId);
      if (!c) conn.cpu.set(streamId, (c = { ns: 0, apportioned: false }));
      c.ns += share + rest;
      rest = 0;
      if (to.length > 1) c.apportioned = true;
    }
  }

  /** The served streams a syscall's CPU goes to: on an outbound connection, its calls' callers still under way. */
  #cpuTargets(st: ConnState, ids: number[]): { conn: ConnState; streamId: number }[] {
    if (st.role === 'server') return ids.map((streamId) => ({ conn: st, streamId }));
    const seen = new Set<string>();
    const out: { conn: ConnState; streamId: number }[] = [];
    for (const id of ids) {
      const c = st.callers.get(id);
      if (!c || c === NO_CALLER || !this.#callers.isServing(st.meta.pid, c.connId, c.streamId)) continue;
      const conn = this.#conns.get(c.connId);
      const key = `${c.connId}:${c.streamId}`;
      if (!conn || seen.has(key)) continue;
      seen.add(key);
      out.push({ conn, streamId: c.streamId });
    }
    return out;
  }

  #build(st: ConnState, r: Http2StreamRecord, out: H2Output): void {
    if (st.role === 'client') return this.#buildCall(st, r, out);
    // CPU charged after a stream ended (a segment ending in its last write is charged with
    // that write, before this) stays with the stream only until it is built.
    const cpu = st.cpu.get(r.streamId) ?? { ns: 0, apportioned: false };
    st.cpu.delete(r.streamId);
    this.#callers.end(st.meta.pid, st.meta.connId, r.streamId);
    const built = buildH2Request(st.meta, r, st.baseNs, cpu, this.#options, this.#generation);
    const key = this.#waitingCalls.size === 0 ? '' : exchangeKey(this.#generation, built.connId, built.seq);
    const calls = key === '' ? undefined : this.#waitingCalls.get(key);
    if (calls) {
      this.#waitingCalls.delete(key);
      this.#waitingCount -= calls.length;
      calls.sort((x, y) => (x.startNs < y.startNs ? -1 : x.startNs > y.startNs ? 1 : 0));
      for (const d of calls) {
        built.dependencies.push(d);
        built.record.dependencies.push(d.record);
      }
    }
    out.requests.push(built);
  }

  /** An outbound stream ended: a dependency of the served stream that made it. */
  #buildCall(st: ConnState, r: Http2StreamRecord, out: H2Output): void {
    const caller = st.callers.get(r.streamId);
    st.callers.delete(r.streamId);
    const tid = st.uncalledTids.get(r.streamId);
    st.uncalledTids.delete(r.streamId);
    if (!caller || caller === NO_CALLER) {
      // Made while no served HTTP/2 stream was under way: perhaps by an HTTP/1 request.
      const startNs = st.baseNs + BigInt(Math.round(r.startTime));
      this.#http1Callers.park({ pid: st.meta.pid, tid: tid ?? st.meta.tid, startNs, order: r.streamId, call: { meta: st.meta, record: r, baseNs: st.baseNs } });
      return;
    }
    const d = buildH2Dependency(st.meta, r, st.baseNs, caller.inferred, this.#generation, this.#options.keepQuery);
    const parentKey = exchangeKey(this.#generation, caller.connId, caller.streamId);
    if (this.#callers.isServing(st.meta.pid, caller.connId, caller.streamId)) {
      if (this.#waitingCount >= MAX_WAITING_CALLS) {
        this.counters.callsOrphaned++;
        return;
      }
      const list = this.#waitingCalls.get(parentKey);
      if (list) list.push(d);
      else this.#waitingCalls.set(parentKey, [d]);
      this.#waitingCount++;
      this.counters.calls++;
      return;
    }
    if (!this.#isBuilt(parentKey)) {
      this.counters.callsOrphaned++;
      return;
    }
    out.late.push({ dependency: d, parentKey }); // counted where it joins its caller
  }
}

/** An outbound stream made while no served stream was under way. */
const NO_CALLER: CallerChoice = Object.freeze({ connId: 0, streamId: 0, inferred: false });

export function newH2PipelineCounters(): H2PipelineCounters {
  return {
    ...newHttp2Counters(),
    connectionsUnannounced: 0,
    connectionFrameBytes: 0,
    recordsLost: 0,
    cpuUnattributedNs: 0,
    cpuNs: 0,
    calls: 0,
    callsUnattributed: 0,
    callsOrphaned: 0,
  };
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
    status: 0,
    localAddr: '',
    remoteAddr: '',
    comm: '',
    peerConnId: 0,
    cpuAfterResponseNs: 0,
    midway: true,
  };
}
