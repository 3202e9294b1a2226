/**
 * The agent with --db and --remote-write-url, end to end: requests persist in SQLite (mode
 * 0600) and survive an agent restart, the CLI reads the database directly, and per-request
 * samples arrive in a real VictoriaMetrics with the exact values the API reports.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI, startAgent, type RunningAgent } from '../harness/agent.ts';
import { waitFor } from '../harness/ports.ts';
import { getRequest, RawHttpClient } from '../harness/raw-client.ts';
import { startNodeServer, type RunningServer } from '../harness/runtimes.ts';
import { startVictoriaMetrics, type RunningVictoriaMetrics } from '../harness/victoria-metrics.ts';
import type { RequestRecord } from '../../src/types.ts';

type Requests = { count: number; requests: RequestRecord[] };
const N = 12;

describe('persistence and remote write', () => {
  let server: RunningServer;
  let vm: RunningVictoriaMetrics;
  let agent: RunningAgent | null = null;
  const db = join(mkdtempSync(join(tmpdir(), 'perfcatch-db-')), 'requests.db');
  let args: string[];

  before(async () => {
    server = await startNodeServer({ OTEL_SERVICE_NAME: 'persist-node' });
    vm = await startVictoriaMetrics();
    args = ['--ports', String(server.port), '--db', db, '--remote-write-url', vm.writeUrl];
    agent = await startAgent(args);
  });

  after(async () => {
    await agent?.stop();
    await server?.stop();
    await vm?.stop();
  });

  it('persists requests in a 0600 SQLite file that outlives the agent', async () => {
    const client = new RawHttpClient(server.port);
    for (let i = 0; i < N; i++) await client.request(getRequest(`/hello/p${i}`, { 'X-Correlation-ID': `persist-${i}` }));
    await client.close();
    const before = await waitFor(`${N} records`, async () => {
      const r = await agent!.get<Requests>('/api/requests?process=persist-node&limit=100');
      return r.body.count === N ? r.body.requests : undefined;
    });
    assert.equal(statSync(db).mode & 0o777, 0o600);
    const health = await agent!.get<{ storage: { ok: boolean; rows: number; path: string } }>('/health');
    assert.equal(health.body.storage.ok, true);
    assert.equal(health.body.storage.path, db);

    await agent!.stop();
    agent = null;
    // The CLI reads the database on its own, with no agent running.
    const cli = spawnSync(process.execPath, [CLI, 'report', '--db', db, '--json'], { encoding: 'utf8' });
    assert.equal(cli.status, 0, cli.stderr);
    const report = JSON.parse(cli.stdout) as { services: { service_name: string; count: number }[] };
    assert.equal(report.services.find((s) => s.service_name === 'persist-node')?.count, N);

    agent = await startAgent(args);
    const afterRestart = await agent.get<Requests>('/api/requests?process=persist-node&limit=100&since=60');
    assert.equal(afterRestart.body.count, N, 'history served from the database after a restart');
    assert.deepEqual(
      afterRestart.body.requests.map((r) => r.request_id).sort(),
      before.map((r) => r.request_id).sort(),
    );
    const one = await agent.get<RequestRecord>(`/api/requests/${before[0]!.request_id}`);
    assert.equal(one.status, 200);
    assert.deepEqual(one.body, before[0]);
  });

  it('pushes per-request samples to VictoriaMetrics with the values the API reports', async () => {
    const records = (await agent!.get<Requests>('/api/requests?process=persist-node&limit=100&since=60')).body.requests;
    const series = await waitFor(
      'samples in VictoriaMetrics',
      async () => {
        const s = await vm.exportSeries('perfcatch_request_duration_ms{service="persist-node"}');
        const n = s.reduce((k, x) => k + x.values.length, 0);
        return n >= N ? s : undefined;
      },
      30_000,
      500,
    );
    // Requests under a millisecond apart share a timestamp: order pairs by value too.
    const byTimeThenValue = (a: readonly [number, number], b: readonly [number, number]) => a[0] - b[0] || a[1] - b[1];
    const got = series.flatMap((s) => s.timestamps.map((t, i) => [t, s.values[i]!] as const)).sort(byTimeThenValue);
    const want = records.map((r) => [Math.round(r.timestamp * 1000), r.duration_ms] as const).sort(byTimeThenValue);
    assert.equal(got.length, N);
    for (let i = 0; i < N; i++) {
      assert.equal(got[i]![0], want[i]![0], 'timestamp (ms) of each request');
      assert.ok(Math.abs(got[i]![1] - want[i]![1]) < 1e-9, 'duration of each request');
    }
    for (const s of series) {
      assert.deepEqual(Object.keys(s.metric).sort(), ['__name__', 'method', 'port', 'process', 'route', 'service', 'status_class']);
    }
  });
});
