/** counters().agent is composed from the parts that count, when it is read (src/metrics/agent-counters.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { agentCounters, type AgentCounterOwners } from '../../src/metrics/agent-counters.ts';
import type { PipelineCountersSnapshot } from '../../src/pipeline/pipeline.ts';

const pipelineCounts: PipelineCountersSnapshot = {
  requests: 3, requestsNotHttp: 4, dependencies: 13, dependenciesLate: 14, dependenciesOrphaned: 15, dataOrphaned: 5,
  linksMade: 16, linksTimedOut: 17, requestsUpdated: 18, restartInFlightLost: 22, capturesEvictedForBytes: 99,
};

function owners(): AgentCounterOwners {
  return {
    frames: { decoded: 1, malformed: 2 },
    pipeline: { counters: () => ({ ...pipelineCounts }) },
    spans: { spansStarted: 6, sampledOut: 10 },
    spanExport: { counters: { exported: 7, failed: 8, dropped: 9, queued: 0, retries: 11, queuedBytes: 0 } },
    storage: { droppedRecords: 19, writeErrors: 20 },
    remoteWrite: { counters: { samplesSent: 0, samplesDropped: 21, requestsFailed: 0, lastError: null } },
    loader: { restartCount: 12 },
  };
}

describe('agentCounters', () => {
  it('reads every counter from its owner, in the order /health lists them', () => {
    const c = agentCounters(owners());
    assert.deepEqual(Object.entries(c), [
      ['frames_decoded', 1], ['frames_malformed', 2], ['requests_recorded', 3], ['requests_not_http', 4],
      ['data_orphaned', 5], ['spans_started', 6], ['spans_exported', 7], ['spans_export_failed', 8],
      ['spans_dropped', 9], ['spans_sampled_out', 10], ['span_export_retries', 11], ['loader_restarts', 12],
      ['dependencies_recorded', 13], ['dependencies_late', 14], ['dependencies_orphaned', 15], ['links_made', 16],
      ['links_timed_out', 17], ['requests_updated', 18], ['storage_dropped', 19], ['storage_write_errors', 20],
      ['remote_write_dropped', 21], ['restart_in_flight_lost', 22],
    ]);
  });

  it('reads 0 for the parts that are switched off', () => {
    const c = agentCounters({ ...owners(), spans: null, spanExport: null, storage: null, remoteWrite: null });
    for (const key of ['spans_started', 'spans_exported', 'spans_export_failed', 'spans_dropped', 'spans_sampled_out',
      'span_export_retries', 'storage_dropped', 'storage_write_errors', 'remote_write_dropped'] as const) {
      assert.equal(c[key], 0, key);
    }
  });

  it('is read at the time of asking, not copied earlier', () => {
    const o = owners();
    const frames = { decoded: 1, malformed: 2 };
    const before = agentCounters({ ...o, frames });
    frames.decoded = 40;
    assert.equal(before.frames_decoded, 1, 'a snapshot does not change afterwards');
    assert.equal(agentCounters({ ...o, frames }).frames_decoded, 40);
  });
});
