/**
 * Overload: when the agent falls behind, the kernel sheds on purpose and counts it. Payload
 * capture goes first (past half of the ring buffer), whole records next (ring buffer full);
 * the server is never slowed or blocked, and every request is either recorded or counted.
 *
 * The agent is frozen with SIGSTOP (its loader then blocks on the full pipe and stops
 * draining) while a client sends requests against a 64 KiB ring buffer.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ROOT, startAgent, type RunningAgent } from '../harness/agent.ts';
import { waitFor } from '../harness/ports.ts';
import { startServer } from '../harness/processes.ts';
import { getRequest, RawHttpClient } from '../harness/raw-client.ts';
import type { RequestRecord } from '../../src/types.ts';

const REQUESTS = 3000;

interface Health {
  lost: Record<string, number>;
  counters: { kernel: Record<string, number>; agent: { requests_recorded: number } };
}

describe('overload: the kernel sheds payloads, then records, and counts both', () => {
  let agent: RunningAgent;
  let server: Awaited<ReturnType<typeof startServer>>;

  before(async () => {
    server = await startServer(process.execPath, [`${ROOT}test/servers/node-http-server.mjs`]);
    agent = await startAgent(['--ports', String(server.port), '--ringbuf-kb', '64']);
  });

  after(async () => {
    process.kill(agent.pid, 'SIGCONT');
    await agent.stop();
    await server.stop();
  });

  it('serves every request while the agent is frozen, then accounts for each one', async () => {
    process.kill(agent.pid, 'SIGSTOP');
    const client = new RawHttpClient(server.port);
    await client.ready;
    let ok = 0;
    for (let i = 0; i < REQUESTS; i++) {
      const res = await client.request(getRequest(`/overload/${i}`));
      if (res.status === 200) ok++;
    }
    await client.close(); // the close reports the last request
    process.kill(agent.pid, 'SIGCONT');
    assert.equal(ok, REQUESTS, 'the server answered every request with the agent frozen');

    // Once resumed, the agent drains what the ring buffer kept and the loader's counters.
    const health = await waitFor(
      'agent to drain and report kernel counters',
      async () => {
        const h = (await agent.get<Health>('/health')).body;
        const submitted = h.counters.kernel.requests ?? 0;
        const dropped = h.lost.kernel_ringbuf_request ?? 0;
        return submitted + dropped === REQUESTS && h.counters.agent.requests_recorded === submitted ? h : undefined;
      },
      30_000,
    );
    const shed = health.lost.kernel_capture_shed!;
    const dropped = health.lost.kernel_ringbuf_request!;
    const recorded = health.counters.agent.requests_recorded;
    console.log(`overload: ${recorded} recorded, ${dropped} records dropped, ${shed} payload captures shed`);
    assert.ok(shed > 0, 'payload capture was shed once the ring buffer was half full');
    assert.ok(dropped > 0, 'whole records were dropped once it was full');
    assert.ok(recorded > 0, 'records that fit were delivered');

    // Shed requests keep their kernel numbers and lose only the parsed HTTP fields.
    const body = (await agent.get<{ requests: RequestRecord[] }>('/api/requests?limit=10000')).body.requests;
    assert.equal(body.length, recorded);
    const withoutHttp = body.filter((r) => r.http_method === null);
    assert.ok(withoutHttp.length > 0, 'some recorded requests had their payload shed');
    for (const r of body) {
      assert.ok(r.bytes_received > 0 && r.bytes_sent > 0, `bytes are exact with or without payload: ${JSON.stringify(r)}`);
      assert.ok(r.duration_ms >= 0);
    }

    // The same counts on /metrics.
    const metrics = await agent.metrics();
    const sample = (stage: string) => Number(new RegExp(`^perfcatch_records_lost_total\\{stage="${stage}"\\} (\\d+)`, 'm').exec(metrics)?.[1]);
    assert.equal(sample('kernel_capture_shed'), shed);
    assert.equal(sample('kernel_ringbuf_request'), dropped);

    // And the agent keeps working: a fresh request is recorded in full.
    const after = new RawHttpClient(server.port);
    await after.ready;
    await after.request(getRequest('/after-overload'));
    await after.close();
    await waitFor(
      'a request after the overload',
      async () => {
        const r = (await agent.get<{ requests: RequestRecord[] }>('/api/requests?path=/after-overload')).body.requests;
        return r.length === 1 && r[0]!.http_status === 200 ? true : undefined;
      },
      10_000,
    );
  });
});
