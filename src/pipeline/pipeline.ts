/**
 * Kernel records in, finished requests and spans out. `handle` is where every decoded kernel
 * record enters; `finish` is where a request is final (linked, with its dependencies) and
 * goes to the store, the metrics and the span exporter.
 */
import { RequestAssembler, type AssembledDependency, type AssembledRequest } from '../assemble/request-assembler.ts';
import { parseRequestHead, parseResponseHead } from '../http/parse.ts';
import { routeTemplate } from '../http/route.ts';
import type { KernelData, KernelDependency, KernelRequest } from '../decode/records.ts';
import type { SpanBuilder } from '../otel/span-builder.ts';
import type { RequestRecord } from '../types.ts';
import { buildDependency, exchangeKey } from './dependency-builder.ts';
import { buildRequest, pathWithQuery, type BuiltRequest, type RequestBuilderOptions } from './request-builder.ts';
import { TraceLinker } from './trace-linker.ts';
import { BoundedMap } from '../util/bounded-map.ts';

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
}

/** Finished requests that late dependencies can still join. */
const MAX_RECENT_REQUESTS = 20_000;

export class RequestPipeline {
  private readonly assembler = new RequestAssembler();
  private readonly linker: TraceLinker;
  private readonly recent = new BoundedMap<string, RequestRecord>(MAX_RECENT_REQUESTS);
  private readonly options: RequestBuilderOptions;
  private readonly spans: SpanBuilder | null;
  private readonly out: PipelineOutputs;
  private requests = 0;
  private requestsNotHttp = 0;
  private dependencies = 0;
  private dependenciesLate = 0;
  private updated = 0;

  constructor(options: RequestBuilderOptions, spans: SpanBuilder | null, out: PipelineOutputs, linkTimeoutMs?: number) {
    this.options = options;
    this.spans = spans;
    this.out = out;
    this.linker = new TraceLinker((b) => this.finish(b), linkTimeoutMs);
  }

  handle(rec: KernelData | KernelDependency | KernelRequest): void {
    switch (rec.kind) {
      case 'data':
        return this.assembler.addData(rec);
      case 'dependency': {
        const late = this.assembler.addDependency(rec, (key) => this.recent.has(key));
        if (late) this.joinLateDependency(late);
        return;
      }
      case 'request': {
        const assembled = this.assembler.completeRequest(rec);
        const earlier = this.recent.get(exchangeKey(rec.connId, rec.seq));
        if (earlier) return this.update(earlier, rec, assembled);
        const built = buildRequest(assembled, this.options);
        this.requests++;
        if (!built.isHttp) this.requestsNotHttp++;
        this.dependencies += built.dependencies.length;
        return this.linker.offer(built);
      }
    }
  }

  private finish(b: BuiltRequest): void {
    const r = b.record;
    this.recent.set(b.connKey, r);
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
  private update(r: RequestRecord, k: KernelRequest, a: AssembledRequest): void {
    this.updated++;
    r.duration_ms = Number(k.endNs > k.startNs ? k.endNs - k.startNs : 0n) / 1e6;
    r.cpu_time_ms = k.cpuNs / 1e6;
    r.bytes_sent = k.bytesSent;
    r.bytes_received = a.bytesReceived;
    if (k.rssBytes > 0) r.memory_rss_bytes = k.rssBytes;
    // Bytes captured after the earlier report (its response head, typically) fill what it lacked.
    if (r.http_status === null) r.http_status = parseResponseHead(a.responseHead)?.status ?? null;
    if (r.http_method === null) {
      const head = parseRequestHead(a.requestHead);
      if (head) {
        r.http_method = head.method;
        r.http_path = pathWithQuery(head, this.options.keepQuery);
        r.route = routeTemplate(head.path);
      }
    }
    this.out.updated(r);
  }

  /** An exchange that reached us after its request was finished: join it there. */
  private joinLateDependency(a: AssembledDependency): void {
    const parent = this.recent.get(exchangeKey(a.kernel.parentConnId, a.kernel.parentSeq));
    if (!parent) return;
    const d = buildDependency(a, this.options.keepQuery);
    this.dependencies++;
    this.dependenciesLate++;
    parent.dependencies.push(d.record);
    this.out.updated(parent);
    this.linker.clientSpanReady(d.exchangeKey, { traceId: parent.trace_id, spanId: d.record.span_id });
    this.spans?.buildClient(d, parent);
  }

  /** Releases requests still waiting for their caller (shutdown). */
  flush(): void {
    this.linker.flush();
  }

  counters(): PipelineCountersSnapshot {
    return {
      requests: this.requests,
      requestsNotHttp: this.requestsNotHttp,
      dependencies: this.dependencies,
      dependenciesLate: this.dependenciesLate,
      dependenciesOrphaned: this.assembler.orphanedDependencies,
      dataOrphaned: this.assembler.orphanedChunks,
      linksMade: this.linker.linksMade,
      linksTimedOut: this.linker.linksTimedOut,
      requestsUpdated: this.updated,
    };
  }
}
