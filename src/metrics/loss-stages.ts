/**
 * Every place a record can be lost, by stage name: the one table /health (`lost`) and
 * /metrics (`perfcatch_records_lost_total{stage}`) both read, so they always agree.
 */
import type { PipelineCounters } from '../types.ts';

export const LOSS_STAGES: readonly [stage: string, read: (c: PipelineCounters) => number | undefined][] = [
  ['kernel_ringbuf_request', (c) => c.kernel.rb_drop_request],
  ['kernel_ringbuf_data', (c) => c.kernel.rb_drop_data],
  /** Requests on inbound connections the full connection table had no room for. */
  ['kernel_conn_table_full', (c) => c.kernel.conn_table_full],
  ['kernel_capture_shed', (c) => c.kernel.capture_shed],
  ['kernel_ringbuf_dependency', (c) => c.kernel.rb_drop_dependency],
  ['pipe_malformed', (c) => c.loader.malformed],
  ['agent_malformed', (c) => c.agent.frames_malformed],
  ['agent_data_orphaned', (c) => c.agent.data_orphaned],
  ['agent_dependencies_orphaned', (c) => c.agent.dependencies_orphaned],
  /** Requests and exchanges under way in a loader that died: their records never came. */
  ['loader_restart_in_flight', (c) => c.agent.restart_in_flight_lost],
  ['spans_dropped', (c) => c.agent.spans_dropped],
  ['spans_failed', (c) => c.agent.spans_export_failed],
  ['remote_write_samples_dropped', (c) => c.agent.remote_write_dropped],
  ['storage_dropped', (c) => c.agent.storage_dropped],
  // HTTP/2 (bpf/h2.bpf.h, src/pipeline/h2-requests.ts)
  /** pc_h2_io records the full ring buffer refused: the frames in them are lost; decoding
   * resumes at the next frame (agent_h2_streams_gapped, agent_h2_stream_ids_skipped_in_gaps). */
  ['kernel_ringbuf_h2', (c) => c.kernel.rb_drop_h2],
  /** Directions whose frame walk stopped in the kernel (bounds, unreadable buffers). */
  ['kernel_h2_walk_lost', (c) => c.kernel.h2_walk_lost],
  /** Connections whose frames could no longer be followed: their streams end as desync. */
  ['agent_h2_frame_desync', (c) => c.h2?.frameDesyncs],
  /** Connections whose HPACK decoding stopped (a malformed block, a reference into a table never
   * seen whole: mid-way joins, cut blocks): their later streams are counted with bytes, headers unknown. */
  ['agent_h2_hpack_desync', (c) => c.h2?.hpackDesyncs],
  /** Header blocks not captured whole (beyond PC_H2_PAYLOAD_MAX or after a gap). */
  ['agent_h2_truncated_header_blocks', (c) => c.h2?.truncatedHeaderBlocks],
  /** Streams under way across such a gap: reported, marked incomplete, bytes a lower bound. */
  ['agent_h2_streams_gapped', (c) => c.h2?.streamsGapped],
  /** Of those, streams ended early: no frame of theirs since the gap while the client opened more
   * streams than the connection holds at once (their end was in it; reported incomplete). */
  ['agent_h2_streams_ended_in_gaps', (c) => c.h2?.streamsEndedInGaps],
  /** Client stream ids a gap went past: streams begun and ended in lost records (an upper bound). */
  ['agent_h2_stream_ids_skipped_in_gaps', (c) => c.h2?.streamIdsSkippedInGaps],
  /** Streams beyond the per-connection bound: counted, not reported. */
  ['agent_h2_streams_dropped', (c) => c.h2?.streamsDropped],
  /** Streams ended by the idle timeout: their connection's close never came into view (reported incomplete). */
  ['agent_h2_streams_idle_expired', (c) => c.h2?.streamsIdleExpired],
  /** Outbound streams made while none of the process's served streams was under way: not reported. */
  ['agent_h2_calls_unattributed', (c) => c.h2?.callsUnattributed],
  /** Outbound streams whose caller's record was gone (or too many waiting): not reported. */
  ['agent_h2_calls_orphaned', (c) => c.h2?.callsOrphaned],
];

/** Every stage with its count (0 for a counter not reported yet). */
export function lossesByStage(c: PipelineCounters): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [stage, read] of LOSS_STAGES) out[stage] = read(c) ?? 0;
  return out;
}
