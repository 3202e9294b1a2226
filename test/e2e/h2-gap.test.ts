/**
 * HTTP/2 across records the kernel could not deliver. The agent is frozen (SIGSTOP: its loader
 * then blocks on the full pipe and stops draining) while a client keeps sending on one HTTP/2
 * connection against a 64 KiB ring buffer, so the kernel's pc_h2_io records are refused for a
 * while. The kernel walks on and says so on the next record (PC_H2F_GAP); the agent resumes at
 * the next frame instead of losing the connection:
 *   - before the freeze, every stream is exact, headers and all;
 *   - after it, every stream is a record with its exact bytes (headers unknown: the lost
 *     records held header blocks, so the HPACK table is);
 *   - every stream the client opened is a record, or a client stream id the gap went past
 *     (counted), and the counters say what was lost.
 * Truth: a relay that keeps every byte of the connection, and the client's own stream ids.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { startAgent, type RunningAgent } from '../harness/agent.ts';
import { assertStreamBytes, startRecordingRelay } from '../harness/h2-wire.ts';
import { h2Request, pool } from '../harness/h2-requests.ts';
import { startH2Server } from '../harness/h2-server.ts';
import { waitFor } from '../harness/ports.ts';
import type { Spawned } from '../harness/processes.ts';
import type { RequestRecord } from '../../src/types.ts';

const BEFORE = 20;
const FROZEN = 3000;
const AFTER = 200;
const CONCURRENCY = 10;

interface Health {
  lost: Record<string, number>;
  counters: { h2?: Record<string, number>; kernel?: Record<string, number>; loader?: Record<string, number> };
}

describe('HTTP/2: records the full ring buffer refused', () => {
  let server: Spawned & { port: number };
  let agent: RunningAgent;

  before(async () => {
    server = await startH2Server();
    agent = await startAgent(['--ports', String(server.port), '--ringbuf-kb', '64']);
  });
  /** Until the agent's HTTP/2 record count holds still for a second: it drained the ring. */
  async function drained(): Promise<void> {
    let seen = -1;
    await waitFor('the agent to drain', async () => {
      const n = (await agent.get<{ requests: RequestRecord[] }>('/api/requests?protocol=h2&limit=10000')).body.requests.length;
      const stable = n === seen;
      seen = n;
      return stable ? true : undefined;
    }, 30_000, 1_000);
  }

  after(async () => {
    process.kill(agent.pid, 'SIGCONT');
    await agent?.stop();
    await server?.stop();
  });

  it(`${BEFORE} streams, ${FROZEN} with the agent frozen, ${AFTER} after, on one connection: decoding resumes at the next frame, every stream accounted for`, async () => {
    const relay = await startRecordingRelay(server.port);
    const session = http2.connect(`http://127.0.0.1:${relay.port}`);
    const ids = { before: new Set<number>(), frozen: new Set<number>(), after: new Set<number>() };
    const send = async (phase: keyof typeof ids, n: number, concurrency: number) =>
      pool(n, concurrency, async (i) => {
        // Distinct sizes: the wire tells the streams apart by their bytes.
        const { status, streamId } = await h2Request(session, 'POST', `/ok/${phase}-${i}?n=${i}`, { 'x-correlation-id': `${phase}-${i}` }, 100 + i);
        assert.equal(status, 200);
        ids[phase].add(streamId);
      });

    await send('before', BEFORE, 1);
    await waitFor('the first streams recorded', async () => {
      const r = await agent.get<{ requests: RequestRecord[] }>('/api/requests?protocol=h2&limit=100');
      return r.body.requests.length === BEFORE ? true : undefined;
    }, 30_000);
    process.kill(agent.pid, 'SIGSTOP');
    await send('frozen', FROZEN, CONCURRENCY);
    process.kill(agent.pid, 'SIGCONT');
    // Until the agent has drained what the ring kept (else the next streams are refused too).
    await drained();
    await send('after', AFTER, CONCURRENCY);
    session.close();
    await new Promise((r) => setTimeout(r, 300));
    relay.close();
    assert.equal(relay.wires.length, 1, 'one connection');
    const total = BEFORE + FROZEN + AFTER;

    // The connection's close ends every stream left open: then records + skipped ids add up.
    let last = '';
    const health = await waitFor('every stream accounted for', async () => {
      const h = (await agent.get<Health>('/health')).body;
      const n = (await agent.get<{ requests: RequestRecord[] }>('/api/requests?protocol=h2&limit=10000')).body.requests.length;
      last = `${n} records; lost ${JSON.stringify(h.lost)}; h2 ${JSON.stringify(h.counters.h2)}; kernel ${JSON.stringify(h.counters.kernel)}; loader ${JSON.stringify(h.counters.loader)}`;
      return n + (h.counters.h2?.streamIdsSkippedInGaps ?? 0) === total ? h : undefined;
    }, 60_000, 500).catch((e: Error) => assert.fail(`${e.message}: ${last}`));
    const h2 = health.counters.h2!;
    const got = (await agent.get<{ requests: RequestRecord[] }>('/api/requests?protocol=h2&limit=10000')).body.requests;
    console.log(
      `# ${got.length} records + ${h2.streamIdsSkippedInGaps} stream ids skipped in gaps = ${total} streams; ${health.lost.kernel_ringbuf_h2} pc_h2_io records refused; ` +
        `h2 counters ${JSON.stringify(h2)}`,
    );
    assert.ok(health.lost.kernel_ringbuf_h2! > 0, 'the ring buffer refused records');
    assert.ok(h2.gaps! > 0, 'the agent resumed after a gap');
    assert.equal(h2.frameDesyncs, 0, 'the connection never desynced');
    assert.equal(health.lost.kernel_h2_walk_lost, 0, 'the kernel walk never stopped');
    assert.equal(health.lost.agent_h2_stream_ids_skipped_in_gaps, h2.streamIdsSkippedInGaps);
    assert.equal(health.lost.agent_h2_streams_gapped, h2.streamsGapped);
    assert.equal(health.lost.agent_h2_streams_ended_in_gaps, h2.streamsEndedInGaps);

    // Before the freeze: exact, headers decoded.
    const first = got.filter((r) => r.correlation_id?.startsWith('before-'));
    assert.equal(first.length, BEFORE);
    assertStreamBytes(first, relay.wires, ids.before);
    for (const r of first) assert.ok(r.http_path?.startsWith(`/ok/${r.correlation_id}`), `${r.http_path}`);
    // After it: each of the client's streams is a record with its exact bytes.
    assertStreamBytes(got, relay.wires, ids.after);
  });

  it(`a gap that lasts until the close: ${FROZEN} streams with the agent frozen, then the close: the close record counts the ids the gap went past`, async () => {
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    const health = async () => (await agent.get<Health>('/health')).body;
    const h2Before = (await health()).counters.h2!;
    const recordsBefore = (await agent.get<{ requests: RequestRecord[] }>('/api/requests?protocol=h2&limit=10000')).body.requests.length;
    await pool(BEFORE, 1, async (i) => void (await h2Request(session, 'POST', `/ok/last-${i}`, {}, 100 + i)));
    process.kill(agent.pid, 'SIGSTOP');
    await pool(FROZEN, CONCURRENCY, async (i) => void (await h2Request(session, 'POST', `/ok/last-frozen-${i}`, {}, 100 + i)));
    process.kill(agent.pid, 'SIGCONT');
    // The close only once the agent has room again (a refused close record would leave the
    // streams to the idle timeout).
    await drained();
    session.close();
    const total = BEFORE + FROZEN;
    let last = '';
    const h = await waitFor('every stream accounted for', async () => {
      const now = await health();
      const n = (await agent.get<{ requests: RequestRecord[] }>('/api/requests?protocol=h2&limit=10000')).body.requests.length - recordsBefore;
      const skipped = now.counters.h2!.streamIdsSkippedInGaps! - h2Before.streamIdsSkippedInGaps!;
      last = `${n} records + ${skipped} skipped ids; h2 ${JSON.stringify(now.counters.h2)}`;
      return n + skipped === total ? { now, n, skipped } : undefined;
    }, 60_000, 500).catch((e: Error) => assert.fail(`${e.message}: ${last}`));
    console.log(`# until the close: ${h.n} records + ${h.skipped} stream ids skipped = ${total} streams`);
    assert.ok(h.skipped > 0, 'the gap went past streams');
    assert.equal(h.now.counters.h2!.frameDesyncs, 0);
  });
});

