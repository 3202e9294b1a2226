/**
 * The kernel smoke: what must hold on every supported kernel. Run natively on the host and
 * inside each VM of the kernel matrix (test/kernels/run-matrix.ts), with the same assertions
 * everywhere:
 *  - the agent loads and attaches;
 *  - keep-alive requests to two real servers (Node, Python) give exactly one record each,
 *    with exact bytes, method, path and status;
 *  - CPU within tolerance of the servers' own thread clocks, RSS within 1% of VmRSS;
 *  - one outbound call recorded as a dependency, linked to the callee's own record;
 *  - a request left idle on an open keep-alive connection is reported (the idle flush);
 *  - /health names the kernel's release and the variants the loader chose for it.
 * With PERFCATCH_SMOKE_OUT set, the measured numbers go to $PERFCATCH_SMOKE_OUT/measured.json.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAgent, type RunningAgent } from '../harness/agent.ts';
import { scaledTimeout, waitFor } from '../harness/ports.ts';
import { getRequest, RawHttpClient } from '../harness/raw-client.ts';
import { startNodeServer, startPythonServer, type RunningServer } from '../harness/runtimes.ts';
import type { RequestRecord } from '../../src/types.ts';
import { expectedVariants } from './expected-variants.ts';
import { driveKeepAlive, helloCpuMs, measure, readTruth, timeScale, warmUp, type Measured, type Sent } from './smoke-traffic.ts';

type Requests = { count: number; requests: RequestRecord[] };

/** Deadlines for records to show up, stretched under TCG (PERFCATCH_TEST_TIME_SCALE). */
const WAIT_MS = scaledTimeout(30_000);

interface SmokeServer {
  name: 'node' | 'python';
  service: string;
  /** Share of requests whose CPU is within tolerance (the accuracy contract, README). */
  cpuWithinPct: number;
  start: (env: Record<string, string>) => Promise<RunningServer>;
}

/**
 * The host's /hello CPU per server, from the matrix's host run (PERFCATCH_SMOKE_HOST_HELLO_MS,
 * JSON): in a VM, the time-based tolerance scales by how much slower the server runs here.
 */
const HOST_HELLO_CPU_MS = JSON.parse(process.env.PERFCATCH_SMOKE_HOST_HELLO_MS ?? '{}') as Record<string, number | undefined>;

const SERVERS: SmokeServer[] = [
  { name: 'node', service: 'smoke-node', cpuWithinPct: 97, start: startNodeServer },
  // As the accuracy test holds it (test/e2e/accuracy.test.ts: 97.4-100% measured, an open question).
  { name: 'python', service: 'smoke-python', cpuWithinPct: 97, start: startPythonServer },
];

describe(`kernel smoke on ${release()} with ${cpus().length} CPUs`, () => {
  let agent: RunningAgent;
  const running = new Map<string, RunningServer>();
  const truthFiles = new Map<string, string>();
  const measured: Record<string, Measured & { helloCpuMs: number; timeScale: number; workScale: number }> = {};
  const report: Record<string, unknown> = { release: release(), cpus: cpus().length, servers: measured };

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'perfcatch-smoke-'));
    for (const s of SERVERS) {
      const truth = join(dir, `${s.name}.truth`);
      truthFiles.set(s.name, truth);
      running.set(s.name, await s.start({ OTEL_SERVICE_NAME: s.service, PERFCATCH_TRUTH_FILE: truth }));
    }
    const t0 = Date.now();
    agent = await startAgent(['--ports', [...running.values()].map((s) => s.port).join(',')]);
    report.agentStartMs = Date.now() - t0;
  });

  after(async () => {
    await agent?.stop();
    for (const s of running.values()) await s.stop();
    const out = process.env.PERFCATCH_SMOKE_OUT;
    if (out) writeFileSync(join(out, 'measured.json'), JSON.stringify(report, null, 2) + '\n');
    const brief = Object.fromEntries(Object.entries(measured).map(([k, v]) => [k, { ...v, perRequest: undefined }]));
    console.log('smoke:', JSON.stringify({ ...report, servers: brief }));
  });

  it('loads and attaches', async () => {
    const health = await agent.get<{ status: string; programs: unknown[] }>('/health');
    assert.equal(health.status, 200);
    assert.equal(health.body.status, 'ok');
    assert.ok(Array.isArray(health.body.programs) && health.body.programs.length > 0, 'attached programs listed');
    report.programs = health.body.programs.length;
  });

  for (const s of SERVERS) {
    it(`${s.name}: keep-alive requests give exact records, bytes, CPU and RSS`, async () => {
      const server = running.get(s.name)!;
      const t0 = Date.now();
      const truthFor = (sent: Sent[]) =>
        waitFor(
          'ground truth for every request',
          () => {
            const t = readTruth(truthFiles.get(s.name)!);
            return sent.every((x) => t.has(x.id)) ? t : undefined;
          },
          WAIT_MS,
        );
      const warm = await warmUp(server.port, `smoke-${s.name}`);
      // A first estimate of the slowdown, from the warm-up, only sizes the CPU work of the run;
      // the tolerance takes the run's own figure (warm-up requests carry first-request costs).
      const workScale = timeScale(helloCpuMs(warm, await truthFor(warm)), HOST_HELLO_CPU_MS[s.name]);
      const run = await driveKeepAlive(server.port, `smoke-${s.name}`, workScale);
      const sent = [...warm, ...run];
      await waitFor(
        `${sent.length} records for ${s.service}`,
        async () => {
          const r = await agent.get<Requests>(`/api/requests?process=${s.service}&limit=10000&since=60`);
          return r.body.count >= sent.length ? true : undefined;
        },
        WAIT_MS,
        250,
      );
      // Give a stray split record time to show up before counting extras.
      await new Promise((r) => setTimeout(r, 1_000));
      const records = (await agent.get<Requests>(`/api/requests?process=${s.service}&limit=10000&since=60`)).body.requests;
      const truth = await truthFor(sent);
      const helloMs = helloCpuMs(run, truth);
      const scale = timeScale(helloMs, HOST_HELLO_CPU_MS[s.name]);
      const m = { ...measure(sent, records, truth, scale), helloCpuMs: helloMs, timeScale: scale, workScale };
      m.wallMs = Date.now() - t0;
      measured[s.name] = m;
      console.log(`${s.name}:`, JSON.stringify({ ...m, perRequest: undefined }));

      assert.equal(m.missing, 0, 'missing records');
      assert.equal(m.extra, 0, 'extra records');
      assert.equal(m.byteErrors, 0, 'byte errors');
      assert.equal(m.fieldErrors, 0, 'method/path/status errors');
      const cpuCheck = `CPU within max(5%, ${m.cpuToleranceAbsMs.toFixed(3)} ms = 0.3 ms x ${scale.toFixed(1)}) for ${m.cpuWithinTolerancePct.toFixed(1)}% of requests (need ${s.cpuWithinPct}%)`;
      const reportedOnly = process.env.PERFCATCH_SMOKE_CPU_REPORTED_ONLY;
      if (reportedOnly) console.log(`# ${s.name}: ${cpuCheck}: reported, not asserted here: ${reportedOnly}`);
      else assert.ok(m.cpuWithinTolerancePct >= s.cpuWithinPct, cpuCheck);
      assert.ok(m.rssWorstRelErr <= 0.01, `RSS within 1% of VmRSS read around the write (worst ${m.rssWorstRelErr})`);
    });
  }

  it('records an outbound call as a dependency linked to the callee', async () => {
    const caller = running.get('node')!;
    const callee = running.get('python')!;
    const call = async (path: string, id: string) => {
      const client = new RawHttpClient(caller.port);
      const res = await client.request(getRequest(`${path}?to=${callee.port}`, { 'X-Correlation-ID': id, Connection: 'close' }));
      assert.equal(res.status, 200, res.body.toString());
      await client.close();
    };
    await call('/warm', 'smoke-warm'); // opens the caller's pooled connection
    await call('/fanout', 'smoke-fanout');
    const fanout = await waitFor(
      'the fanout record with its 2 dependencies',
      async () => {
        const rec = (await agent.get<Requests>('/api/requests?correlation_id=smoke-fanout')).body.requests[0];
        return rec && rec.dependencies.length === 2 ? rec : undefined;
      },
      WAIT_MS,
      250,
    );
    const served = await waitFor(
      'the callee records',
      async () => {
        const r = await agent.get<Requests>(`/api/requests?process=${SERVERS[1]!.service}&limit=10000&since=60`);
        const byPath = new Map(r.body.requests.map((x) => [x.http_path, x]));
        const fresh = byPath.get('/dep-new');
        const pooled = byPath.get('/dep-pooled');
        return fresh && pooled ? { '/dep-new': fresh, '/dep-pooled': pooled } : undefined;
      },
      WAIT_MS,
      250,
    );
    for (const dep of fanout.dependencies) {
      const callee = served[dep.http_path as '/dep-new' | '/dep-pooled'];
      assert.ok(callee, `a callee record for ${dep.http_path}`);
      assert.equal(dep.peer_port, running.get('python')!.port);
      assert.equal(dep.http_status, 200);
      assert.equal(dep.bytes_sent, callee.bytes_received, `${dep.http_path}: caller sent what the callee read`);
      assert.equal(dep.bytes_received, callee.bytes_sent, `${dep.http_path}: caller read what the callee sent`);
      assert.equal(callee.trace_id, fanout.trace_id, `${dep.http_path} in the caller's trace`);
      assert.equal(callee.parent_span_id, dep.span_id, `${dep.http_path}: parent is the CLIENT span`);
    }
    assert.deepEqual(fanout.dependencies.map((d) => [d.http_path, d.new_connection]), [
      ['/dep-new', true],
      ['/dep-pooled', false],
    ]);
  });

  it('reports a request left idle on an open keep-alive connection', async () => {
    const client = new RawHttpClient(running.get('python')!.port);
    const res = await client.request(getRequest('/idle', { 'X-Correlation-ID': 'smoke-idle' }));
    const t0 = Date.now();
    // The connection stays open: only the idle flush can report this request.
    const rec = await waitFor(
      'the idle request',
      async () => (await agent.get<Requests>('/api/requests?correlation_id=smoke-idle')).body.requests[0],
      WAIT_MS,
      100,
    );
    report.idleReportedAfterMs = Date.now() - t0;
    await client.close();
    assert.equal(rec.http_status, 200);
    assert.equal(rec.bytes_received, res.bytesSent);
    assert.equal(rec.bytes_sent, res.bytesReceived);
  });

  it('/health lists the kernel variants', async () => {
    const health = await agent.get<{ kernel: { release?: string; variants?: unknown } | null }>('/health');
    report.kernel = health.body.kernel;
    assert.equal(health.body.kernel?.release, release());
    assert.deepEqual(health.body.kernel?.variants, expectedVariants(release()));
  });
});
