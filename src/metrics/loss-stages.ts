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
];

/** Every stage with its count (0 for a counter not reported yet). */
export function lossesByStage(c: PipelineCounters): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [stage, read] of LOSS_STAGES) out[stage] = read(c) ?? 0;
  return out;
}
