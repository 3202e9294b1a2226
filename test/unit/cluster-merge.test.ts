/** `--cluster`'s merging of several agents' service summaries, and its bounded fan-out. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mergeServices, percentilesAreBounds } from '../../src/cli/merge-services.ts';
import { summarizeServices, type SummaryInput } from '../../src/store/service-summary.ts';
import { settleBounded } from '../../src/util/settle-bounded.ts';

function requests(service: string, durations: number[], status = 200): SummaryInput[] {
  return durations.map((d, i) => ({
    service_name: service, process_name: `${service}-bin`, http_status: status, duration_ms: d, cpu_time_ms: d / 2,
    bytes_received: 100, bytes_sent: 1000, timestamp: 1_700_000_000 + i,
  }));
}

describe('mergeServices', () => {
  it('agents that gave every request: percentiles over the union, exact', () => {
    const nodeA = requests('checkout', [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const nodeB = [...requests('checkout', [100, 200], 500), ...requests('inventory', [3])];
    const merged = mergeServices([{ requests: nodeA }, { requests: nodeB }]);
    const truth = summarizeServices([...nodeA, ...nodeB]);
    assert.deepEqual(merged.map(({ agents, percentiles_exact, ...s }) => s), truth);
    assert.deepEqual(merged.map((s) => [s.service_name, s.agents, s.percentiles_exact]), [['checkout', 2, true], ['inventory', 1, true]]);
    // Neither node's own p95 (10 on node-a, 200 on node-b) is the cluster's.
    assert.equal(merged[0]!.duration_ms.p95, 200);
    assert.equal(merged[0]!.duration_ms.p50, 6);
    assert.equal(merged[0]!.errors, 2);
  });

  it('an agent that gave only summaries: exact sums, percentiles as their largest, flagged', () => {
    const full = requests('checkout', [1, 2, 3]);
    const busy = summarizeServices([...requests('checkout', [50, 60, 70, 80]), ...requests('billing', [9, 10])]);
    const merged = mergeServices([{ requests: full }, { summaries: busy }]);
    const checkout = merged.find((s) => s.service_name === 'checkout')!;
    assert.equal(checkout.count, 7);
    assert.equal(checkout.bytes_sent, 7000);
    assert.equal(checkout.percentiles_exact, false);
    assert.equal(percentilesAreBounds(checkout), true);
    assert.deepEqual(checkout.duration_ms, { p50: 60, p95: 80, p99: 80 });
    assert.ok(checkout.duration_ms.p50 >= summarizeServices([...full, ...requests('checkout', [50, 60, 70, 80])])[0]!.duration_ms.p50);
    // A service only the busy agent serves keeps its own, exact summary.
    const billing = merged.find((s) => s.service_name === 'billing')!;
    const { agents: _agents, percentiles_exact: _exact, ...billingSummary } = billing;
    assert.deepEqual(billingSummary, busy.find((s) => s.service_name === 'billing'));
    assert.equal(billing.percentiles_exact, true);
    assert.deepEqual(merged.map((s) => s.service_name), ['checkout', 'billing'], 'busiest first');
  });

  it('a plain agent summary is never taken for a bound', () => {
    assert.equal(percentilesAreBounds(summarizeServices(requests('x', [1]))[0]!), false);
  });
});

describe('settleBounded', () => {
  it('runs at most `limit` tasks at once, keeps the order and settles failures', async () => {
    let running = 0;
    let most = 0;
    const results = await settleBounded([5, 1, 4, 2, 3, 0], 2, async (n) => {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, n * 3));
      running--;
      if (n === 4) throw new Error('four');
      return n * 10;
    });
    assert.equal(most, 2);
    assert.deepEqual(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message)), [50, 10, 'four', 20, 30, 0]);
  });
});
