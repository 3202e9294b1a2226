/**
 * Issue 13, finding 8: the kernel's connection table is bounded (--conn-table-size). With more
 * connections open than it holds, the requests of the connections beyond it are counted lost
 * (kernel_conn_table_full, in /health and /metrics, and /health says why it is degraded), and
 * the connections it does hold are never evicted to make room: they keep being recorded. Once
 * room frees, those connections are recorded from their next request. And a server killed
 * with SIGKILL closes its connections without a close syscall: their entries are reclaimed by
 * the loader, so the table does not stay full of the dead.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startAgent, type RunningAgent } from '../harness/agent.ts';
import { waitFor } from '../harness/ports.ts';
import { getRequest, RawHttpClient } from '../harness/raw-client.ts';
import { startPythonServer, type RunningServer } from '../harness/runtimes.ts';
import type { RequestRecord } from '../../src/types.ts';

const TABLE = 32;
/** Connections open at once on the first server, the first TABLE of them tracked. */
const CONNECTIONS = 48;
const REQUESTS_PER_CONNECTION = 3;
/** After the first server is killed: connections to the second one. */
const LATER_CONNECTIONS = 8;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Health {
  status: string;
  degraded?: string[];
  lost: Record<string, number>;
  counters: { kernel: Record<string, number>; loader: Record<string, number> };
}

async function recordsMatching(agent: RunningAgent, prefix: string): Promise<RequestRecord[]> {
  const r = await agent.get<{ requests: RequestRecord[] }>(`/api/requests?limit=10000&since=60&correlation_id_regex=${encodeURIComponent(`^${prefix}`)}`);
  return r.body.requests;
}

describe(`a connection table of ${TABLE} entries`, () => {
  let first: RunningServer;
  let second: RunningServer;
  let agent: RunningAgent;
  const clients: RawHttpClient[] = [];

  before(async () => {
    first = await startPythonServer();
    second = await startPythonServer();
    // --pids: nothing else on this shared host takes room in the table.
    agent = await startAgent(['--pids', `${first.pid},${second.pid}`, '--conn-table-size', String(TABLE)]);
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await agent?.stop();
    await first?.stop();
    await second?.stop();
  });

  it(`${CONNECTIONS} keep-alive connections x ${REQUESTS_PER_CONNECTION} requests: the first ${TABLE} recorded in full, the other ${CONNECTIONS - TABLE} connections' ${(CONNECTIONS - TABLE) * REQUESTS_PER_CONNECTION} requests counted lost, and their next ones recorded once ${CONNECTIONS - TABLE} connections close`, async () => {
    // One at a time, so that the server accepts them in this order.
    for (let c = 0; c < CONNECTIONS; c++) {
      const client = new RawHttpClient(first.port);
      clients.push(client);
      const res = await client.request(getRequest(`/full/${c}/0`, { 'X-Correlation-ID': `full-${c}-0` }));
      assert.equal(res.status, 200);
    }
    // The later requests go round the connections: the tracked ones stay tracked (no eviction).
    for (let r = 1; r < REQUESTS_PER_CONNECTION; r++) {
      await Promise.all(clients.map(async (client, c) => {
        const res = await client.request(getRequest(`/full/${c}/${r}`, { 'X-Correlation-ID': `full-${c}-${r}` }));
        assert.equal(res.status, 200);
      }));
    }
    const tracked = TABLE * REQUESTS_PER_CONNECTION;
    const lost = (CONNECTIONS - TABLE) * REQUESTS_PER_CONNECTION;
    // The last request on each connection is reported by the idle flush.
    const got = await waitFor(`${tracked} records`, async () => {
      const all = await recordsMatching(agent, 'full-');
      return all.length >= tracked ? all : undefined;
    });
    const expected: string[] = [];
    for (let c = 0; c < TABLE; c++) for (let r = 0; r < REQUESTS_PER_CONNECTION; r++) expected.push(`full-${c}-${r}`);
    assert.deepEqual(got.map((r) => r.correlation_id).sort(), expected.sort(), `the first ${TABLE} connections' requests, each once`);
    for (const r of got) assert.equal(r.http_path, `/${r.correlation_id!.replaceAll('-', '/')}`);

    const health = await waitFor('the loss counted in /health', async () => {
      const h = (await agent.get<Health>('/health')).body;
      return h.lost.kernel_conn_table_full! >= lost ? h : undefined;
    }, 5_000).catch(async () => (await agent.get<Health>('/health')).body);
    assert.equal(health.lost.kernel_conn_table_full, lost, 'every request of an untracked connection counted lost, once');
    assert.equal(health.counters.kernel.conn_table_full, lost);
    assert.equal(health.status, 'degraded');
    assert.ok(
      health.degraded?.some((d) => d.startsWith(`connection table full (${TABLE} connections, --conn-table-size): ${lost} records lost`)),
      JSON.stringify(health.degraded),
    );
    assert.match(await agent.metrics(), new RegExp(`perfcatch_records_lost_total\\{stage="kernel_conn_table_full"\\} ${lost}\\b`));

    // Room again: the first connections close, and the untracked ones' next requests find it.
    const untracked = CONNECTIONS - TABLE;
    await Promise.all(clients.slice(0, untracked).map((c) => c.close()));
    await sleep(1_000); // the server sees each EOF and closes its end
    const r = REQUESTS_PER_CONNECTION;
    const later: string[] = [];
    await Promise.all(clients.slice(TABLE).map(async (client, i) => {
      const c = TABLE + i;
      later.push(`full-${c}-${r}`);
      assert.equal((await client.request(getRequest(`/full/${c}/${r}`, { 'X-Correlation-ID': `full-${c}-${r}` }))).status, 200);
    }));
    const again = await waitFor(`${later.length} records once room freed`, async () => {
      const got = (await recordsMatching(agent, 'full-')).filter((x) => later.includes(x.correlation_id ?? ''));
      return got.length >= later.length ? got : undefined;
    });
    assert.deepEqual(again.map((x) => x.correlation_id).sort(), later.sort());
    assert.equal((await agent.get<Health>('/health')).body.lost.kernel_conn_table_full, lost, 'nothing more lost');
  });

  it(`after the server holding them is SIGKILLed, its ${TABLE} entries are reclaimed and a new server's connections are recorded`, async () => {
    const killedAt = performance.now();
    await first.stop('SIGKILL');
    await Promise.all(clients.splice(0).map((c) => c.close()));
    const reclaimed = await waitFor('the dead server\'s entries reclaimed', async () => {
      const h = (await agent.get<Health>('/health')).body;
      return (h.counters.loader.conns_reclaimed ?? 0) >= TABLE ? h.counters.loader.conns_reclaimed : undefined;
    }, 20_000);
    assert.equal(reclaimed, TABLE, 'exactly the dead server\'s entries');
    console.log(`# ${reclaimed} entries reclaimed ${((performance.now() - killedAt) / 1000).toFixed(1)} s after the kill`);

    const ids: string[] = [];
    await Promise.all(Array.from({ length: LATER_CONNECTIONS }, async (_, c) => {
      const client = new RawHttpClient(second.port);
      clients.push(client);
      for (let r = 0; r < 2; r++) {
        ids.push(`later-${c}-${r}`);
        assert.equal((await client.request(getRequest(`/later/${c}/${r}`, { 'X-Correlation-ID': `later-${c}-${r}` }))).status, 200);
      }
    }));
    const got = await waitFor(`${ids.length} records`, async () => {
      const r = await recordsMatching(agent, 'later-');
      return r.length >= ids.length ? r : undefined;
    });
    assert.deepEqual(got.map((r) => r.correlation_id).sort(), ids.sort());
    const health = (await agent.get<Health>('/health')).body;
    assert.equal(health.lost.kernel_conn_table_full, (CONNECTIONS - TABLE) * REQUESTS_PER_CONNECTION, 'nothing more lost');
  });
});
