/**
 * Issue 13, finding 9, with the real agent and a real OpenTelemetry Collector: the collector
 * is frozen (SIGSTOP) for 60 s while requests keep coming, then thawed. Every span is
 * delivered or counted (dropped, failed); with the default 128 MB queue none is lost, and the
 * agent's memory stays under the chart's limit.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startAgent, type RunningAgent } from '../harness/agent.ts';
import { startCollector, type RunningCollector } from '../harness/collector.ts';
import { waitFor } from '../harness/ports.ts';
import { getRequest, RawHttpClient } from '../harness/raw-client.ts';
import { startNodeServer, type RunningServer } from '../harness/runtimes.ts';

const HANG_S = 60;
const TARGET_RATE = 2_000;
const CONNECTIONS = 8;
const CHART_MEMORY_LIMIT_BYTES = 512 * 1024 * 1024;

interface Health {
  otlp: { exported: number; failed: number; dropped: number; queued: number; retries: number; queuedBytes: number };
  counters: { agent: { requests_recorded: number; spans_started: number } };
  status: string;
  degraded?: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Paced keep-alive load at about `rate` requests/s until `stop()`; resolves with the count sent. */
function load(port: number, rate: number): { stop: () => Promise<number> } {
  let running = true;
  let sent = 0;
  const perConnectionGapMs = (CONNECTIONS / rate) * 1000;
  const workers = Array.from({ length: CONNECTIONS }, async (_, c) => {
    const client = new RawHttpClient(port);
    let next = performance.now();
    while (running) {
      await client.request(getRequest(`/hang/${c}`));
      sent++;
      next += perConnectionGapMs;
      const wait = next - performance.now();
      if (wait > 0) await sleep(wait);
    }
    await client.close();
  });
  return { stop: async () => ((running = false), await Promise.all(workers), sent) };
}

describe(`collector frozen for ${HANG_S} s under load`, () => {
  let collector: RunningCollector;
  let server: RunningServer;
  let agent: RunningAgent;

  before(async () => {
    collector = await startCollector();
    server = await startNodeServer({ OTEL_SERVICE_NAME: 'hang-node' });
    agent = await startAgent(['--ports', String(server.port), '--otlp-endpoint', collector.httpEndpoint]);
  });
  after(async () => {
    collector?.child.kill('SIGCONT');
    await agent?.stop();
    await server?.stop();
    await collector?.stop();
  });

  it(`~${TARGET_RATE} req/s through a ${HANG_S} s freeze: every span delivered or counted; memory bounded`, { timeout: 600_000 }, async () => {
    const traffic = load(server.port, TARGET_RATE);
    await sleep(2_000);
    collector.child.kill('SIGSTOP');
    let peakQueuedBytes = 0;
    const hangStart = performance.now();
    while (performance.now() - hangStart < HANG_S * 1000) {
      await sleep(1_000);
      peakQueuedBytes = Math.max(peakQueuedBytes, (await agent.get<Health>('/health')).body.otlp.queuedBytes);
    }
    const during = (await agent.get<Health>('/health')).body;
    collector.child.kill('SIGCONT');
    await sleep(2_000);
    const sent = await traffic.stop();

    const recorded = await waitFor('every request recorded', async () => {
      const n = (await agent.get<Health>('/health')).body.counters.agent.requests_recorded;
      return n >= sent ? n : undefined;
    }, 30_000);
    const settled = await waitFor('the queue drained', async () => {
      const h = (await agent.get<Health>('/health')).body;
      return h.otlp.queued === 0 && h.otlp.exported + h.otlp.dropped + h.otlp.failed >= h.counters.agent.spans_started ? h : undefined;
    }, 300_000, 1_000);
    // OTLP is at-least-once: an export that timed out during the freeze may still be taken
    // in by the thawed collector, then arrive again when retried. Every span must arrive;
    // copies are reported.
    let copies = 0;
    const delivered = await waitFor('spans in the collector', async () => {
      const mine = collector.spans().filter((s) => s.resource['service.name'] === 'hang-node');
      const distinct = new Set(mine.map((s) => s.span.spanId)).size;
      copies = mine.length - distinct;
      return distinct >= settled.otlp.exported ? distinct : undefined;
    }, 60_000, 1_000);
    const peakRss = Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${agent.pid}/status`, 'utf8'))![1]) * 1024;
    console.log(
      `# ${sent} requests (${(sent / (HANG_S + 4)).toFixed(0)}/s), ${recorded} recorded, ${settled.counters.agent.spans_started} spans: ` +
        `${settled.otlp.exported} exported (${delivered} distinct in the collector, ${copies} copies from retries), ${settled.otlp.dropped} dropped, ${settled.otlp.failed} failed, ` +
        `${settled.otlp.retries} retries; peak queue ${(peakQueuedBytes / 1e6).toFixed(1)} MB; agent peak RSS ${(peakRss / 1e6).toFixed(0)} MB; ` +
        `status during the freeze: ${during.status} ${JSON.stringify(during.degraded ?? [])}`,
    );
    assert.equal(recorded, sent);
    assert.equal(settled.otlp.exported + settled.otlp.dropped + settled.otlp.failed, settled.counters.agent.spans_started);
    assert.equal(settled.otlp.dropped + settled.otlp.failed, 0, 'the default 128 MB queue holds 60 s of spans');
    assert.equal(delivered, settled.otlp.exported);
    assert.ok(settled.otlp.retries > 0, 'exports failed during the freeze and were retried');
    assert.ok(peakRss < CHART_MEMORY_LIMIT_BYTES);
  });
});
