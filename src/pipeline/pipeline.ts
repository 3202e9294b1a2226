/**
 * Kernel records in, finished requests and spans out. `handle` is where every decoded kernel
 * record enters; `finish` is where a request is final (linked, with its dependencies) and
 * goes to the store, the metrics and the span exporter.
 */
import { RequestAssembler, type AssembledDependency, type AssembledRequest } from '../assemble/request-assembler.ts';
import { parseRequestHead } from '../http/parse.ts';
import type { KernelData, KernelDependency, KernelH2Conn, KernelH2Io, KernelRequest } from '../decode/records.ts';
import type { SpanBuilder } from '../otel/span-builder.ts';
import type { RequestRecord } from '../types.ts';
import { buildDependency } from './dependency-builder.ts';
import { ExchangeIndex } from '../util/exchange-index.ts';
import { exchangeKeyParts } from '../util/exchange-key.ts';
import { buildRequest, measuredFields, requestLineFields, responseStatus, type BuiltRequest, type RequestBuilderOptions } from './request-builder.ts';
import { TraceLinker } from './trace-linker.ts';
import { BoundedMap } from '../util/bounded-map.ts';
import type { RequestHistory } from '../store/request-store.ts';
import { H2Requests, newH2PipelineCounters, type H2Output, type H2PipelineCounters, type LateCall } from './h2-requests.ts';
import { RequestFlags } from '../decode/layout.ts';
import { upgradedRequest } from './h2-upgrade.ts';
import type { BuiltDependency } from './dependency-builder.ts';

export interface PipelineOutputs {
  /** A finished request. */
  record(r: RequestRecord): void;
  /** A finished request changed later (a late dependency joined it, or it was re-reported). */
  updated(r: RequestRecord): void;
}

export interface PipelineCountersSnapshot {
  requests: number;
  requestsNotHttp: number;
  dependencies: number;
  dependenciesLate: number;
  dependenciesOrphaned: number;
  dataOrphaned: number;
  linksMade: number;
  linksTimedOut: number;
  requestsUpdated: number;
  /** Records under way when their loader died (and records that came from it afterwards). */
  restartInFlightLost: number;
  /** Captures dropped to keep the assembler within its byte bound. */
  capturesEvictedForBytes: number;
}

/** Finished requests that late dependencies can still join. */
const MAX_RECENT_REQUESTS = 20_000;

/**
 * Keeps the recent requests as objects: for a pipeline without a store (tests, replays).
 * The agent gives its ring buffer instead, which keeps them without an object each.
 */
export class ObjectHistory implements RequestHistory {
  readonly #records = new BoundedMap<number, RequestRecord>(MAX_RECENT_REQUESTS);
  #added = 0;

  add(record: RequestRecord): number {
    this.#records.set(this.#added, record);
    return this.#added++;
  }

  get(ticket: number): RequestRecord | null {
    return this.#records.get(ticket) ?? null;
  }

  replace(ticket: number, record: RequestRecord): void {
    if (this.#records.has(ticket)) this.#records.set(ticket, record);
  }
}

export class RequestPipeline {
  /** The current loader generation's: connection ids mean nothing across generations. */
  private assembler = new RequestAssembler(0);
  /** Totals of the assemblers of earlier generations. */
  private earlier = { orphanedChunks: 0, orphanedDependencies: 0, capturesEvictedForBytes: 0 };
  private restartInFlightLost = 0;
  /** Late dependencies whose request `history` had already let go. */
  private historyLostDependencies = 0;
  private readonly linker: TraceLinker;
  /** Finished requests by exchange (generation, connection, seq): their ticket in `history`. */
  private readonly recent = new ExchangeIndex(MAX_RECENT_REQUESTS);
  private readonly history: RequestHistory;
  private readonly options: RequestBuilderOptions;
  private readonly spans: SpanBuilder | null;
  private readonly out: PipelineOutputs;
  private requests = 0;
  private requestsNotHttp = 0;
  private dependencies = 0;
  private dependenciesLate = 0;
  private updated = 0;
  /** HTTP/2 connections of the current generation; their counters span generations. */
  readonly h2Counters: H2PipelineCounters = newH2PipelineCounters();
  private h2: H2Requests;

  /**
   * `history` keeps finished requests (the agent's ring buffer: it is not then stored again
   * by `out.record`) so that late reports can change them.
   */
  constructor(options: RequestBuilderOptions, spans: SpanBuilder | null, out: PipelineOutputs, linkTimeoutMs?: number, history: RequestHistory = new ObjectHistory()) {
    this.options = options;
    this.history = history;
    this.spans = spans;
    this.out = out;
    this.linker = new TraceLinker((b) => this.finish(b), linkTimeoutMs);
    this.h2 = this.newH2(0);
  }

  private newH2(generation: number): H2Requests {
    return new H2Requests(this.options, generation, this.h2Counters, (parentKey) => this.recentTicket(parentKey) !== -1, undefined, (late) => this.joinLateCall(late));
  }

  /** The ticket of a finished request by its exchangeKey() string (HTTP/2 callers), or -1. */
  private recentTicket(key: string): number {
    const parts = exchangeKeyParts(key);
    return parts ? this.recent.get(parts.generation, parts.connId, parts.seq) : -1;
  }

  /**
   * `generation`: the loader process the record came from (LoaderProcess numbers them). The
   * first record of a newer generation retires the current one; a record of an older one
   * (still in the pipe of a dead loader) is counted lost, never matched with new ids.
   */
  handle(rec: KernelData | KernelDependency | KernelRequest | KernelH2Conn | KernelH2Io, generation = 0): void {
    if (generation !== this.assembler.generation) {
      if (generation < this.assembler.generation) {
        if (rec.kind === 'request' || rec.kind === 'dependency') this.restartInFlightLost++;
        return;
      }
      this.startGeneration(generation);
    }
    switch (rec.kind) {
      case 'h2_conn': {
        // After an h2c upgrade, the HTTP/1.1 request (captured under its seq) is stream 1.
        if (!(rec.flags & RequestFlags.H2_UPGRADE)) return this.offerH2(this.h2.open(rec));
        const assembled = this.assembler.completeRequest({ ...rec, kind: 'request' });
        return this.offerH2(this.h2.open(rec, upgradedRequest(assembled, this.options.correlation)));
      }
      case 'h2_io':
        return this.offerH2(this.h2.io(rec));
      case 'data':
        return this.assembler.addData(rec);
      case 'dependency': {
        const late = this.assembler.addDependency(rec, (connId, seq) => this.recent.has(generation, connId, seq));
        if (late) this.joinLateDependency(late);
        return;
      }
      case 'request': {
        const assembled = this.assembler.completeRequest(rec);
        const earlier = this.recent.get(generation, rec.connId, rec.seq);
        if (earlier !== -1) return this.update(earlier, assembled);
        const built = buildRequest(assembled, this.options);
        this.h2.http1Served(rec.pid, rec.connId, rec.seq, rec.tid, rec.startNs, rec.endNs);
        this.requests++;
        if (!built.isHttp) this.requestsNotHttp++;
        this.dependencies += built.dependencies.length;
        return this.linker.offer(built);
      }
    }
  }

  /** Streams an HTTP/2 connection ended: requests like any other, and calls whose caller was finished. */
  private offerH2(out: H2Output): void {
    for (const b of out.requests) {
      this.requests++;
      if (!b.isHttp) this.requestsNotHttp++;
      this.dependencies += b.dependencies.length;
      this.linker.offer(b);
    }
    for (const late of out.late) this.joinLateCall(late);
  }

  /** An outbound HTTP/2 call whose caller was finished before it: join it there. */
  private joinLateCall({ dependency, parentKey }: LateCall): void {
    const ticket = this.recentTicket(parentKey);
    if (ticket === -1) {
      // Its caller's record is still waiting for its own caller's link, or no longer held.
      this.h2Counters.callsOrphaned++;
      return;
    }
    this.h2Counters.calls++;
    this.attachLate(ticket, dependency);
  }

  private finish(b: BuiltRequest): void {
    const r = b.record;
    this.recent.set(b.generation, b.connId, b.seq, this.history.add(r));
    for (const d of b.dependencies) this.linker.clientSpanReady(d.exchangeKey, { traceId: r.trace_id, spanId: d.record.span_id });
    this.out.record(r);
    if (this.spans) {
      this.spans.build(b);
      for (const d of b.dependencies) this.spans.buildClient(d, r);
    }
  }

  /**
   * The same request again: its response resumed after an idle flush (PC_F_LATE_WRITE), or
   * the flush raced with the next read. The stored record takes the final numbers; its span
   * is already gone.
   */
  private update(ticket: number, a: AssembledRequest): void {
    this.updated++;
    const r = this.history.get(ticket);
    if (!r) return; // the store no longer holds it (a buffer smaller than MAX_RECENT_REQUESTS)
    // Request bytes do not change between reports; the earlier count stays: a pipelined
    // request's was realigned by HTTP framing from the record before it, which a re-report
    // (an idle flush racing the close) no longer follows, and would read as 0.
    Object.assign(r, measuredFields(a), { bytes_received: r.bytes_received });
    // Unlike a new request, an update has no /proc fallback: the earlier reading stays.
    if (a.kernel.rssBytes > 0) r.memory_rss_bytes = a.kernel.rssBytes;
    // Bytes captured after the earlier report (its response head, typically) fill what it lacked.
    if (r.http_status === null) r.http_status = responseStatus(a);
    if (r.http_method === null) {
      const head = parseRequestHead(a.requestHead);
      if (head) Object.assign(r, requestLineFields(head, this.options.keepQuery));
    }
    this.history.replace(ticket, r);
    this.out.updated(r);
  }

  /**
   * A new loader: what the old one had under way will never be finished, so it is counted
   * lost here, and its ids are never looked up again (recent and the linker key by generation).
   */
  startGeneration(generation: number): void {
    const old = this.assembler;
    const inFlight = old.inFlight();
    this.restartInFlightLost += inFlight.records + this.h2.openStreams();
    this.h2 = this.newH2(generation);
    this.earlier = {
      orphanedChunks: this.earlier.orphanedChunks + old.orphanedChunks,
      orphanedDependencies: this.earlier.orphanedDependencies + old.orphanedDependencies + inFlight.dependencies,
      capturesEvictedForBytes: this.earlier.capturesEvictedForBytes + old.capturesEvictedForBytes,
    };
    this.assembler = new RequestAssembler(generation);
  }

  /** An exchange that reached us after its request was finished: join it there. */
  private joinLateDependency(a: AssembledDependency): void {
    const ticket = this.recent.get(a.generation, a.kernel.parentConnId, a.kernel.parentSeq);
    if (ticket === -1) return;
    this.attachLate(ticket, buildDependency(a, this.options.keepQuery));
  }

  /** A dependency joins the request finished under `ticket`. */
  private attachLate(ticket: number, d: BuiltDependency): void {
    const parent = this.history.get(ticket);
    if (!parent) {
      this.historyLostDependencies++; // its request is no longer held (a buffer smaller than MAX_RECENT_REQUESTS)
      return;
    }
    this.dependencies++;
    this.dependenciesLate++;
    parent.dependencies.push(d.record);
    this.history.replace(ticket, parent);
    this.out.updated(parent);
    this.linker.clientSpanReady(d.exchangeKey, { traceId: parent.trace_id, spanId: d.record.span_id });
    this.spans?.buildClient(d, parent);
  }

  /** The stdout chunk the records came in is done: captures still pending get their own bytes. */
  detach(): void {
    this.assembler.detach();
  }

  /** Releases requests still waiting for their caller, and calls for theirs (shutdown). */
  flush(): void {
    this.h2.flushHttp1Callers();
    this.linker.flush();
  }

  counters(): PipelineCountersSnapshot {
    return {
      requests: this.requests,
      requestsNotHttp: this.requestsNotHttp,
      dependencies: this.dependencies,
      dependenciesLate: this.dependenciesLate,
      dependenciesOrphaned: this.earlier.orphanedDependencies + this.assembler.orphanedDependencies + this.historyLostDependencies,
      dataOrphaned: this.earlier.orphanedChunks + this.assembler.orphanedChunks,
      restartInFlightLost: this.restartInFlightLost,
      capturesEvictedForBytes: this.earlier.capturesEvictedForBytes + this.assembler.capturesEvictedForBytes,
      linksMade: this.linker.linksMade,
      linksTimedOut: this.linker.linksTimedOut,
      requestsUpdated: this.updated,
    };
  }
}
