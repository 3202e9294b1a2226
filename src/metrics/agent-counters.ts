/**
 * The agent's counters (/health `counters.agent`, /metrics), composed from their owners each
 * time they are read: every count lives in the one object that makes it, never in a copy.
 */
import type { RemoteWriteCounters } from '../export/remote-write.ts';
import type { SpanExportCounters } from '../otel/span-export.ts';
import type { PipelineCountersSnapshot } from '../pipeline/pipeline.ts';
import type { AgentCounters } from '../types.ts';

/** Loader frames the agent read: decoded into records, or not. */
export interface FrameCounts {
  decoded: number;
  malformed: number;
}

/** Where each counter lives; null: that part is switched off, and its counters read 0. */
export interface AgentCounterOwners {
  frames: Readonly<FrameCounts>;
  pipeline: { counters(): PipelineCountersSnapshot };
  spans: { readonly spansStarted: number; readonly sampledOut: number } | null;
  spanExport: { readonly counters: SpanExportCounters } | null;
  storage: { readonly droppedRecords: number; readonly writeErrors: number } | null;
  remoteWrite: { readonly counters: RemoteWriteCounters } | null;
  loader: { readonly restartCount: number };
}

/** The snapshot, in the order /health has always listed the counters. */
export function agentCounters(o: AgentCounterOwners): AgentCounters {
  const p = o.pipeline.counters();
  const q = o.spanExport?.counters;
  return {
    frames_decoded: o.frames.decoded,
    frames_malformed: o.frames.malformed,
    requests_recorded: p.requests,
    requests_not_http: p.requestsNotHttp,
    data_orphaned: p.dataOrphaned,
    spans_started: o.spans?.spansStarted ?? 0,
    spans_exported: q?.exported ?? 0,
    spans_export_failed: q?.failed ?? 0,
    spans_dropped: q?.dropped ?? 0,
    spans_sampled_out: o.spans?.sampledOut ?? 0,
    span_export_retries: q?.retries ?? 0,
    loader_restarts: o.loader.restartCount,
    dependencies_recorded: p.dependencies,
    dependencies_late: p.dependenciesLate,
    dependencies_orphaned: p.dependenciesOrphaned,
    links_made: p.linksMade,
    links_timed_out: p.linksTimedOut,
    requests_updated: p.requestsUpdated,
    storage_dropped: o.storage?.droppedRecords ?? 0,
    storage_write_errors: o.storage?.writeErrors ?? 0,
    remote_write_dropped: o.remoteWrite?.counters.samplesDropped ?? 0,
    restart_in_flight_lost: p.restartInFlightLost,
  };
}
