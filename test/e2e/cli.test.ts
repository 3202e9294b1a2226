/**
 * The query commands (report, detail, services, alerts, top) run as a user runs them: a child
 * process per command, against the real agent's API watching real servers, and against a
 * SQLite database the test fills itself. Checks counts, the dependency tree, alert exit
 * codes, --json, and the one-line errors.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT, startAgent, type RunningAgent } from '../harness/agent.ts';
import { cli } from '../harness/cli.ts';
import { assertOneLineError } from '../harness/one-line-error.ts';
import { freePort, waitFor } from '../harness/ports.ts';
import { getRequest, RawHttpClient } from '../harness/raw-client.ts';
import { startNodeServer, startPythonServer, type RunningServer } from '../harness/runtimes.ts';
import { SqliteStore } from '../../src/store/sqlite-store.ts';
import type { ServiceSummary } from '../../src/store/service-summary.ts';
import type { RequestRecord } from '../../src/types.ts';

const PLAIN = 20;
type Requests = { count: number; requests: RequestRecord[] };

describe('the CLI as users type it', () => {
  it('`npx perfcatch` prints no npm warnings, whatever node npm itself runs on', async () => {
    const { spawnSync } = await import('node:child_process');
    const cwd = mkdtempSync(join(tmpdir(), 'perfcatch-npx-'));
    try {
      // npm from the machine's PATH (Node 20 here), typed in another directory, with an npm
      // cache as fresh as a new machine's (npm warns only on the first run otherwise).
      const PATH = (process.env.PATH ?? '').split(':').filter((d) => !d.startsWith(ROOT)).join(':');
      const env = { ...process.env, PATH, npm_config_cache: join(cwd, 'npm-cache') };
      const r = spawnSync('npx', ['--prefix', ROOT, 'perfcatch', '--help'], { cwd, env, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^usage: perfcatch <command>/);
      assert.equal(r.stderr, '', 'nothing before or beside the output');
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});

describe('perfcatch query commands against the real agent', () => {
  let agent: RunningAgent;
  let caller: RunningServer;
  let callee: RunningServer;
  let dir: string;
  let fanout: RequestRecord;
  let compute: RequestRecord;

  before(async () => {
    caller = await startNodeServer({ OTEL_SERVICE_NAME: 'gt-cli-caller' });
    callee = await startPythonServer({ OTEL_SERVICE_NAME: 'gt-cli-callee' });
    agent = await startAgent(['--ports', `${caller.port},${callee.port}`]);
    dir = mkdtempSync(join(tmpdir(), 'perfcatch-cli-e2e-'));

    const client = new RawHttpClient(caller.port);
    for (let i = 0; i < PLAIN; i++) {
      const res = await client.request(getRequest(`/items/${i}`, { 'X-Correlation-ID': `cli-${i}` }));
      assert.equal(res.status, 200);
    }
    await client.request(getRequest('/compute?ms=20', { 'X-Correlation-ID': 'cli-compute' }));
    await client.request(getRequest(`/warm?to=${callee.port}`, { 'X-Correlation-ID': 'cli-warm' }));
    await client.request(getRequest(`/fanout?to=${callee.port}`, { 'X-Correlation-ID': 'cli-fanout' }));
    await client.close();

    fanout = await waitFor('the fanout record with its 2 dependencies', async () => {
      const r = await agent.get<Requests>('/api/requests?correlation_id=cli-fanout&since=60');
      const rec = r.body.requests[0];
      return rec && rec.dependencies.length === 2 ? rec : undefined;
    });
    compute = (await agent.get<Requests>('/api/requests?correlation_id=cli-compute&since=60')).body.requests[0]!;
    assert.ok(compute, 'the compute record');
    await waitFor('every record', async () => {
      const a = await agent.get<Requests>('/api/requests?process=gt-cli-caller&since=60&limit=10000');
      const b = await agent.get<Requests>('/api/requests?process=gt-cli-callee&since=60&limit=10000');
      return a.body.count === PLAIN + 3 && b.body.count === 3 ? true : undefined;
    });
  });

  after(async () => {
    await agent?.stop();
    await caller?.stop();
    await callee?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('report: a row per service with the right count; --json parses', async () => {
    const r = await cli(['report', '--api', agent.api]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^SERVICE +COUNT +P50 MS +P95 MS +P99 MS +CPU P50 +CPU P95 +CPU P99 +IN +OUT +ERRORS\n/);
    assert.match(r.stdout, new RegExp(`\\ngt-cli-caller +${PLAIN + 3} +[\\d.]+ +[\\d.]+ +[\\d.]+ +[\\d.]+ +[\\d.]+ +[\\d.]+ +[\\d.]+ (B|KiB) +[\\d.]+ (B|KiB) +0 \\(0%\\)\\n`));
    assert.match(r.stdout, /\ngt-cli-callee +3 /);
    assert.doesNotMatch(r.stdout, /\x1b\[/, 'no colour off a terminal');

    const j = await cli(['report', '--api', agent.api, '--process', 'gt-cli-caller', '--json', '--since', '30']);
    assert.equal(j.code, 0, j.stderr);
    const body = JSON.parse(j.stdout) as { since_minutes: number; services: ServiceSummary[] };
    assert.equal(body.since_minutes, 30);
    assert.equal(body.services.length, 1);
    const s = body.services[0]!;
    assert.equal(s.service_name, 'gt-cli-caller');
    assert.equal(s.count, PLAIN + 3);
    assert.equal(s.errors, 0);
    assert.ok(s.duration_ms.p99 >= compute.duration_ms, 'p99 includes the slow request');
  });

  it('services lists both services with count and last seen', async () => {
    const r = await cli(['services', '--api', agent.api, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const byName = new Map((JSON.parse(r.stdout).services as { service_name: string; count: number; last_seen: number }[]).map((s) => [s.service_name, s]));
    assert.equal(byName.get('gt-cli-caller')?.count, PLAIN + 3);
    assert.equal(byName.get('gt-cli-callee')?.count, 3);
    assert.ok(Math.abs(byName.get('gt-cli-caller')!.last_seen - Date.now() / 1000) < 300);
    const table = await cli(['services', '--api', agent.api]);
    assert.match(table.stdout, /^SERVICE +PROCESSES +COUNT +LAST SEEN +AGO\n/);
    assert.match(table.stdout, new RegExp(`\\ngt-cli-caller +node +${PLAIN + 3} +\\d{4}-\\d\\d-\\d\\dT\\S+Z +\\d+[smh]\\n`));
  });

  it('detail shows the request and its dependency tree', async () => {
    const r = await cli(['detail', fanout.request_id, '--api', agent.api]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^GET \/fanout\S* +200\n/);
    assert.match(r.stdout, new RegExp(`service +gt-cli-caller \\(process node, pid ${caller.pid}\\)`));
    assert.match(r.stdout, /correlation +cli-fanout\n/);
    assert.match(r.stdout, new RegExp(`trace id +${fanout.trace_id}\\n`));
    assert.match(r.stdout, /dependencies \(2\):\n/);
    const p = callee.port;
    assert.match(r.stdout, new RegExp(`\\n  ├─ GET /dep-new → 127\\.0\\.0\\.1:${p} 200, [\\d.]+ ms, sent \\d+ B / received \\d+ B, new connection \\(connect [\\d.]+ ms\\)\\n`));
    assert.match(r.stdout, new RegExp(`\\n  └─ GET /dep-pooled → 127\\.0\\.0\\.1:${p} 200, [\\d.]+ ms, sent \\d+ B / received \\d+ B, pooled\\n$`));

    const j = await cli(['detail', fanout.request_id, '--api', agent.api, '--json']);
    assert.deepEqual((JSON.parse(j.stdout) as RequestRecord).dependencies, fanout.dependencies);
    assertOneLineError(await cli(['detail', 'no-such-request', '--api', agent.api]), 1, /no request with id "no-such-request"/);
  });

  it('alerts exits 1 above a threshold and 0 under a huge one', async () => {
    const hit = await cli(['alerts', '--threshold-cpu', '10', '--api', agent.api, '--since', '60']);
    assert.equal(hit.code, 1, hit.stderr);
    assert.match(hit.stdout, new RegExp(`GET /compute\\S* .*${compute.request_id}`));
    assert.match(hit.stdout, /ALERT: \d+ requests? above threshold \(cpu > 10 ms\)/);

    const dur = await cli(['alerts', '--threshold-duration', '15', '--api', agent.api, '--json']);
    assert.equal(dur.code, 1, dur.stderr);
    const body = JSON.parse(dur.stdout) as { breached: boolean; requests: { request_id: string; exceeded: string[] }[] };
    assert.equal(body.breached, true);
    assert.ok(body.requests.some((x) => x.request_id === compute.request_id && x.exceeded.includes('duration_ms')));

    const ok = await cli(['alerts', '--threshold-duration', '1000000', '--threshold-cpu', '1000000', '--api', agent.api]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^OK: no request above threshold/);
    assertOneLineError(await cli(['alerts', '--api', agent.api]), 2, /--threshold-duration MS, --threshold-cpu MS/);
  });

  it('top --once prints both tables', async () => {
    const r = await cli(['top', '--once', '--limit', '3', '--api', agent.api]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^perfcatch top  http:\/\/127\.0\.0\.1:\d+  \d+ requests in the last 5 min/);
    assert.match(r.stdout, new RegExp(`\\nSLOWEST\\nDUR MS +CPU MS +STATUS +SERVICE +REQUEST +AGO +ID\\n`));
    assert.match(r.stdout, new RegExp(`\\nMOST CPU\\nCPU MS +DUR MS +STATUS +SERVICE +REQUEST +AGO +ID\\n +[\\d.]+ +[\\d.]+ +200 +gt-cli-caller +GET /compute\\S* +\\d+[smh] +${compute.request_id}\\n`));
    // Not a terminal: one frame even without --once, and it exits.
    const j = await cli(['top', '--json', '--api', agent.api]);
    const body = JSON.parse(j.stdout) as { slowest: { request_id: string }[]; cpu: { request_id: string }[] };
    assert.equal(body.cpu[0]?.request_id, compute.request_id);
    assert.ok(body.slowest.length > 0);
  });

  it('user errors: a bad flag exits 2 and an unreachable API exits 1, one line each', async () => {
    assertOneLineError(await cli(['report', '--sinse', '5']), 2, /unknown option --sinse/);
    assertOneLineError(await cli(['top', '--interval', 'soon']), 2, /--interval: expected a number/);
    const closed = await freePort();
    assertOneLineError(await cli(['report', '--api', `http://127.0.0.1:${closed}`]), 1, /cannot reach the agent API at http:\/\/127\.0\.0\.1:\d+: connection refused/);
    assertOneLineError(await cli(['services'], { PERFCATCH_API: `http://127.0.0.1:${closed}` }), 1, /connection refused/);
    assertOneLineError(await cli(['report', '--db', join(dir, 'missing.db')]), 1, /no database at/);
  });

  it('--db: report and detail read a database filled by SqliteStore, same answers as the API', async () => {
    const db = join(dir, 'requests.db');
    const all = (await agent.get<Requests>('/api/requests?since=60&limit=10000')).body.requests;
    const store = SqliteStore.open({ path: db, retentionHours: 1e6, maxSizeMb: 100 });
    for (const r of all) store.add(r);
    store.close();

    const fromDb = await cli(['report', '--db', db, '--json']);
    assert.equal(fromDb.code, 0, fromDb.stderr);
    const fromApi = await cli(['report', '--api', agent.api, '--json']);
    assert.deepEqual(JSON.parse(fromDb.stdout), JSON.parse(fromApi.stdout));
    const table = await cli(['report'], { PERFCATCH_DB_PATH: db });
    assert.match(table.stdout, new RegExp(`\\ngt-cli-caller +${PLAIN + 3} `));

    const detail = await cli(['detail', fanout.request_id, '--db', db]);
    assert.equal(detail.code, 0, detail.stderr);
    assert.match(detail.stdout, /├─ GET \/dep-new → .*new connection/);
    assert.match(detail.stdout, /└─ GET \/dep-pooled → .*pooled\n$/);
    assertOneLineError(await cli(['detail', 'nope', '--db', db]), 1, /no request with id "nope"/);
  });
});
