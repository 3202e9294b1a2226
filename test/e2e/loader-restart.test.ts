/**
 * Issue 13, finding 1 (agent side), on the real kernel: the loader is SIGKILLed ten times
 * while requests are under way. A restarted loader numbers its connections from 1 again;
 * the agent must never alter an earlier record with a new request's numbers, must record
 * every request made once capture is back, must count what was under way at each kill as
 * lost, and must keep the kernel's counters accumulating across restarts.
 *
 * Requests sent while no loader runs are not seen by any program, so they are neither
 * recorded nor counted: the test sends none then (the in-flight ones were read before it).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loaderPid, startAgent, type RunningAgent } from '../harness/agent.ts';
import { waitFor } from '../harness/ports.ts';
import { getRequest, RawHttpClient } from '../harness/raw-client.ts';
import { startPythonServer, type RunningServer } from '../harness/runtimes.ts';
import type { RequestRecord } from '../../src/types.ts';

const KILLS = 10;
/** Per round: requests on fresh connections and on one keep-alive connection. */
const FRESH = 15;
const KEEP_ALIVE = 15;
/** Per round: requests whose head the server has read when the loader dies. */
const IN_FLIGHT = 3;

type Requests = { count: number; requests: RequestRecord[] };
interface Health {
  status: string;
  lost: Record<string, number>;
  counters: { kernel: Record<string, number>; agent: { loader_restarts: number } };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe(`loader SIGKILLed ${KILLS} times under load: no record altered, every request recorded or counted lost`, () => {
  let server: RunningServer;
  let agent: RunningAgent;

  before(async () => {
    server = await startPythonServer();
    agent = await startAgent(['--ports', String(server.port)]);
  });
  after(async () => {
    await agent?.stop();
    await server?.stop();
  });

  it(`${KILLS} kills x (${FRESH} fresh + ${KEEP_ALIVE} keep-alive requests recorded exactly, ${IN_FLIGHT} in flight counted lost)`, async () => {
    /** Every record seen, by request id, as first seen complete. */
    const seen = new Map<string, RequestRecord>();
    let inFlightSent = 0;
    let inFlightDone: Promise<unknown>[] = [];

    for (let round = 0; round <= KILLS; round++) {
      const ids: string[] = [];
      const fresh = Array.from({ length: FRESH }, async (_, i) => {
        const id = `r${round}-fresh-${i}`;
        ids.push(id);
        const client = new RawHttpClient(server.port);
        await client.request(getRequest(`/fresh/${round}/${i}`, { 'X-Correlation-ID': id, Connection: 'close' }));
        await client.close();
      });
      const keepAlive = (async () => {
        const client = new RawHttpClient(server.port);
        for (let i = 0; i < KEEP_ALIVE; i++) {
          const id = `r${round}-ka-${i}`;
          ids.push(id);
          await client.request(getRequest(`/ka/${round}/${i}`, { 'X-Correlation-ID': id }));
        }
        await client.close();
      })();
      await Promise.all([...fresh, keepAlive]);
      const got = await waitFor(`round ${round}: ${ids.length} records`, async () => {
        const r = await agent.get<Requests>(`/api/requests?correlation_id_regex=${encodeURIComponent(`^r${round}-`)}&limit=1000`);
        return r.body.count >= ids.length ? r.body.requests : undefined;
      });
      assert.equal(got.length, ids.length, `round ${round}: each request recorded once`);
      for (const r of got) {
        const [, kind, i] = /^r\d+-(fresh|ka)-(\d+)$/.exec(r.correlation_id ?? '') ?? [];
        assert.equal(r.http_path, `/${kind}/${round}/${i}`, `round ${round}: ${r.correlation_id} has its own path`);
        assert.equal(r.http_status, 200);
        seen.set(r.request_id, structuredClone(r));
      }
      if (round === KILLS) break;

      // Requests whose heads the server reads, then the loader dies before their responses.
      for (let k = 0; k < IN_FLIGHT; k++) {
        const client = new RawHttpClient(server.port);
        inFlightSent++;
        inFlightDone.push(
          client.request(getRequest(`/compute?ms=2500`, { 'X-Correlation-ID': `inflight-${round}-${k}`, Connection: 'close' })).finally(() => client.close()),
        );
      }
      // Many 50 ms drains (their heads reach the agent before the kill), and one 1 s stats
      // record after this round's requests: what a loader counted after its last stats
      // record dies with it.
      await sleep(1_200);
      const before = (await agent.get<Health>('/health')).body.counters.agent.loader_restarts;
      process.kill(loaderPid(agent.pid), 'SIGKILL');
      await waitFor(`loader restart ${round + 1}`, async () => {
        const h = await agent.get<Health>('/health');
        return h.status === 200 && h.body.counters.agent.loader_restarts === before + 1 ? true : undefined;
      }, 60_000);
    }
    await Promise.all(inFlightDone);
    inFlightDone = [];

    // No earlier record was altered by a later request with a reused connection id.
    const all = await agent.get<Requests>('/api/requests?limit=10000&since=60');
    const byId = new Map(all.body.requests.map((r) => [r.request_id, r]));
    let altered = 0;
    for (const [id, r] of seen) if (JSON.stringify(byId.get(id)) !== JSON.stringify(r)) altered++;
    assert.equal(altered, 0, `${altered} of ${seen.size} records altered`);
    assert.equal(seen.size, (KILLS + 1) * (FRESH + KEEP_ALIVE));

    // Every in-flight request is recorded or counted lost, and nothing else is counted.
    const health = (await agent.get<Health>('/health')).body;
    const inFlightRecorded = all.body.requests.filter((r) => r.correlation_id?.startsWith('inflight-')).length;
    const lost = health.lost.loader_restart_in_flight!;
    console.log(`# in flight: ${inFlightSent} sent, ${inFlightRecorded} recorded, ${lost} counted lost`);
    assert.equal(inFlightRecorded + lost, inFlightSent);

    // The kernel's request counter kept accumulating over the eleven loaders (each alone saw
    // about ${FRESH + KEEP_ALIVE + IN_FLIGHT}); the last one's stats record comes within a second.
    const kernelRequests = await waitFor('kernel counters summed over all loaders', async () => {
      const n = (await agent.get<Health>('/health')).body.counters.kernel.requests ?? 0;
      return n >= seen.size ? n : undefined;
    }, 5_000).catch(async () => (await agent.get<Health>('/health')).body.counters.kernel.requests);
    assert.ok(kernelRequests! >= seen.size, `kernel requests ${kernelRequests} < ${seen.size}`);
    const metrics = await agent.metrics();
    assert.match(metrics, new RegExp(`perfcatch_records_lost_total\\{stage="loader_restart_in_flight"\\} ${lost}\\b`));
  });
});
