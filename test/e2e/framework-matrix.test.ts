/**
 * The framework matrix (issue 10): real frameworks, each with the ground truth it measures
 * itself (test/harness/frameworks.ts), run under the agent in two modes:
 *  - sequential: one request at a time; reading the server's /proc/<pid>/task/<tid>/schedstat
 *    before and after each request calibrates the framework's own per-request CPU beyond the
 *    handler clock (parsing, routing, serialisation), per request kind (median);
 *  - concurrent: 8 keep-alive connections at once (gunicorn's sync workers close each
 *    connection, so there each request has its own).
 * Truth CPU = handler clock + calibrated overhead; in the sequential pass the CPU mark is
 * held against each request's own schedstat delta, which is exact there. Concurrently each
 * kind's overhead is calibrated again, in a concurrent run of that kind alone (the sequential
 * ones overstate a concurrent run by 10-50%, and not alike for every kind); mixed, they are
 * scaled by one measured factor that makes the truth add up to the serving threads' own
 * schedstat around the run (overheadScale). The score against the sequential overheads,
 * unscaled, is reported beside it.
 * Pass marks:
 *  - one exact record per request: bytes, status, method, path, pid of the serving worker;
 *  - CPU within max(10%, 0.5 ms) for >= 95% of requests (event loops, prefork); Go and the
 *    Jetty pool are measured and reported (their bounds go in the README);
 *  - no request with CPU above wall x 1.05 + 0.3 ms unless its handler ran work in parallel;
 *  - Express and aiohttp call an upstream twice per /fanout (pooled + new connection):
 *    >= 99% list exactly their own dependencies with exact bytes, and >= 99% of the upstream's
 *    SERVER records are children of the right CLIENT span;
 *  - identity: service_name from OTEL_SERVICE_NAME, process_name what /proc/<pid>/comm (ps)
 *    shows for the worker; gunicorn also runs under `--process gunicorn`.
 * Marks that the agent misses today fail their test; the numbers are printed as a table and
 * written to test/results/framework-matrix.json either way.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT, startAgent, unattributedCpuMs, type RunningAgent } from '../harness/agent.ts';
import {
  calibrate,
  score,
  truthSelfWithinPct,
  overheadScale,
  scaleOverheads,
  truthCpuMs,
  requestCostMs,
  type CalibrationSample,
  type CpuBudget,
  type MatrixRow,
  type Overheads,
  type RequestKind,
  type Sent,
} from '../harness/framework-score.ts';
import {
  commOf,
  readSchedstat,
  readTruth,
  startAiohttp,
  startExpress,
  startGin,
  startGunicornFlask,
  startJetty,
  type RunningFramework,
  type TruthLine,
} from '../harness/frameworks.ts';
import { freePort, waitFor } from '../harness/ports.ts';
import { getRequest, RawHttpClient, type RawResponse } from '../harness/raw-client.ts';
import { startNodeServer, type RunningServer } from '../harness/runtimes.ts';
import type { RequestRecord } from '../../src/types.ts';

const CONNECTIONS = 8;
const PER_CONNECTION = 30;
const WARMUP_PER_CONNECTION = 6;
/** Requests per connection in each kind's concurrent calibration run. */
const CALIBRATION_PER_CONNECTION = 8;
const SEQUENTIAL = 60;
const CPU_WITHIN_PCT = 95;
const DEPS_PCT = 99;
const RESULTS = join(ROOT, 'test', 'results', 'framework-matrix.json');

interface Framework {
  name: string;
  model: 'event loop' | 'prefork' | 'goroutines' | 'pool';
  start: (env: Record<string, string>) => Promise<RunningFramework>;
  /** gunicorn's sync workers answer with Connection: close. */
  keepAlive: boolean;
  /** Has /fanout (two upstream calls per request). */
  fanout: boolean;
  /** Routes it serves besides work/size/missing. */
  extraKind?: RequestKind;
  /** The CPU mark is asserted (else measured and reported: Go, pools). */
  cpuMarkAsserted: boolean;
  /**
   * Whose schedstat calibrates the overhead: the serving thread where one thread does all of
   * a request's work, the whole process where the runtime spreads it over threads.
   */
  calibrateOn: 'thread' | 'process';
  /**
   * With 'process': only the threads whose comm starts with this (the framework's own pool,
   * not the JVM's JIT compiler and GC threads, which work on their own schedule).
   */
  calibrationThreads?: string;
  /**
   * The process_name its records must carry: the name ps shows for the command the user ran
   * (a Node 24 main thread renames its comm to "MainThread"; setproctitle rewrites gunicorn's
   * to "gunicorn: worke"), printed beside the live comm.
   */
  processName: string;
  /** Also run the agent with `--process <name>` and expect every request. */
  processFilter?: string;
  /**
   * Environment variable that tells the server which address to bind. The agent then starts
   * first, as a DaemonSet does before an app is deployed: gunicorn's setproctitle overwrites
   * the environment, so its OTEL_SERVICE_NAME is only known to an agent that saw it exec.
   */
  bindEnv?: string;
}

const FRAMEWORKS: Framework[] = [
  { name: 'express', model: 'event loop', processName: 'node', start: startExpress, keepAlive: true, fanout: true, cpuMarkAsserted: true, calibrateOn: 'thread' },
  { name: 'aiohttp', model: 'event loop', processName: 'python', start: startAiohttp, keepAlive: true, fanout: true, cpuMarkAsserted: true, calibrateOn: 'thread' },
  {
    name: 'gunicorn-flask',
    model: 'prefork',
    processName: 'gunicorn',
    start: startGunicornFlask,
    keepAlive: false,
    fanout: false,
    cpuMarkAsserted: true,
   
    calibrateOn: 'thread',
    processFilter: 'gunicorn',
    bindEnv: 'GUNICORN_BIND',
  },
  { name: 'gin', model: 'goroutines', processName: 'gin-app', start: startGin, keepAlive: true, fanout: false, extraKind: 'parallel', cpuMarkAsserted: false, calibrateOn: 'process' },
  { name: 'jetty', model: 'pool', processName: 'java', start: startJetty, keepAlive: true, fanout: false, cpuMarkAsserted: false, calibrateOn: 'process', calibrationThreads: 'jetty-pool' },
];

/** PERFCATCH_FRAMEWORKS=express,gin runs only those (their rows replace theirs in the JSON). */
const SELECTED = process.env.PERFCATCH_FRAMEWORKS?.split(',').filter(Boolean);

const WORK_US = [500, 1000, 2000, 4000];

/** Request i of a run: CPU work, varied body sizes, 404s, and the framework's extra route. */
function requestFor(fw: Framework, i: number): { kind: RequestKind; path: string } {
  switch (i % 5) {
    case 0:
    case 2:
      return { kind: 'work', path: `/work/${WORK_US[(i >> 1) % WORK_US.length]}` };
    case 1:
      return { kind: 'size', path: `/size/${(i * 1009) % 30_000}` };
    case 3:
      if (fw.fanout) return { kind: 'fanout', path: '/fanout' };
      if (fw.extraKind === 'parallel') return { kind: 'parallel', path: '/parallel/1000' };
      return { kind: 'size', path: `/size/${(i * 7919) % 60_000}` };
    default:
      return { kind: 'missing', path: `/missing/${i}` };
  }
}

/** One request; on a fresh connection when the server does not keep connections alive. */
async function send(fw: Framework, conn: { client: RawHttpClient | null; port: number }, id: string, path: string): Promise<RawResponse> {
  if (!fw.keepAlive) {
    const c = new RawHttpClient(conn.port);
    const res = await c.request(getRequest(path, { 'X-Request-Id': id, Connection: 'close' }));
    await c.close();
    return res;
  }
  conn.client ??= new RawHttpClient(conn.port);
  return conn.client.request(getRequest(path, { 'X-Request-Id': id }));
}

/**
 * CONNECTIONS connections at once, each sending `perConnection` requests; request i on
 * connection c is `pick(i + c)` (the mixed run's requestFor, or one kind's paths in turn).
 */
async function driveConcurrent(
  fw: Framework,
  port: number,
  prefix: string,
  perConnection: number,
  pick: (i: number) => { kind: RequestKind; path: string } = (i) => requestFor(fw, i),
): Promise<Sent[]> {
  const sent: Sent[] = [];
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async (_, c) => {
      const conn = { client: null as RawHttpClient | null, port };
      for (let i = 0; i < perConnection; i++) {
        const id = `${prefix}-${c}-${i}`;
        const { kind, path } = pick(i + c);
        sent.push({ id, kind, path, res: await send(fw, conn, id, path) });
      }
      await conn.client?.close();
    }),
  );
  return sent;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const total = (m: Map<number, number>) => [...m.values()].reduce((a, b) => a + b, 0);

/** Waits until no thread of the server runs for 2 ms (its epilogue after the response is done). */
async function quiet(pids: number[], namePrefix?: string): Promise<Map<number, number>> {
  let prev = readSchedstat(pids, namePrefix);
  for (let i = 0; i < 25; i++) {
    await sleep(2);
    const now = readSchedstat(pids, namePrefix);
    if (total(now) === total(prev)) return now;
    prev = now;
  }
  return prev;
}

/** One request at a time, each bracketed by schedstat reads of every server thread. */
async function driveSequential(
  fw: Framework,
  server: RunningFramework,
  prefix: string,
  truthFile: string,
): Promise<{ sent: Sent[]; samples: CalibrationSample[]; schedstatMs: Map<string, number> }> {
  const sent: Sent[] = [];
  const samples: CalibrationSample[] = [];
  const schedstatMs = new Map<string, number>();
  const conn = { client: null as RawHttpClient | null, port: server.port };
  let before = await quiet(server.allPids, fw.calibrationThreads);
  for (let i = 0; i < SEQUENTIAL; i++) {
    const id = `${prefix}-${i}`;
    const { kind, path } = requestFor(fw, i);
    const res = await send(fw, conn, id, path);
    sent.push({ id, kind, path, res });
    const afterReq = await quiet(server.allPids, fw.calibrationThreads);
    const t: TruthLine = await waitFor(`truth for ${id}`, () => readTruth(truthFile).get(id), 5_000, 5);
    const threadNs = (afterReq.get(t.tid) ?? 0) - (before.get(t.tid) ?? 0);
    const processNs = total(afterReq) - total(before);
    samples.push({ kind, handlerNs: t.cpu_ns, threadNs, processNs });
    schedstatMs.set(id, (fw.calibrateOn === 'thread' ? threadNs : processNs) / 1e6);
    before = afterReq;
  }
  await conn.client?.close();
  return { sent, samples, schedstatMs };
}

type Requests = { count: number; requests: RequestRecord[] };

/**
 * Every record served on `port`, whatever service or process name the agent gave it (those
 * are scored, so they cannot select what gets scored).
 */
async function recordsOn(agent: RunningAgent, port: number): Promise<RequestRecord[]> {
  return (await agent.get<Requests>('/api/requests?limit=10000&since=60')).body.requests.filter((r) => r.local_port === port);
}

/** Waits for every id's record (and the upstream's two per fanout), then a grace for extras. */
async function settle(agent: RunningAgent, port: number, upstreamPort: number | null, sent: Sent[]): Promise<void> {
  const ids = new Set(sent.map((s) => s.id));
  const fanouts = sent.filter((s) => s.kind === 'fanout').length;
  await waitFor(
    `${ids.size} records on port ${port}`,
    async () => {
      const got = new Set((await recordsOn(agent, port)).map((r) => r.correlation_id).filter((c) => c !== null && ids.has(c)));
      if (got.size < ids.size) return undefined;
      if (upstreamPort) {
        const ups = (await recordsOn(agent, upstreamPort)).filter((r) => sent.some((s) => r.http_path?.startsWith(`/dep/${s.id}/`)));
        if (ups.length < 2 * fanouts) return undefined;
      }
      return true;
    },
    20_000,
    250,
  ).catch(() => undefined); // missing records are counted by the score, not thrown here
  await sleep(1_000);
}

function printTable(rows: MatrixRow[]): void {
  const head = ['framework', 'mode', 'reqs', 'exact', 'bytes', 'cpu ok %', 'vs schedstat %', 'ceiling %', 'cpu err med/worst ms', 'cpu>wall', 'deps %', 'links %', 'misplaced deps (flagged inferred %)', 'process_name', 'service_name', 'cpu_attribution', 'overhead ms', 'serving threads / requests + unattributed / truth sum ms', 'concurrent overhead ms x scale (cpu ok % on the sequential model)'];
  const lines = rows.map((r) => [
    r.framework,
    r.mode,
    r.requests,
    r.exact_records,
    r.exact_bytes,
    r.cpu_within_pct ?? '-',
    r.cpu_within_pct_vs_schedstat ?? '-',
    r.truth_self_within_pct ?? '-',
    r.cpu_median_err_ms === null ? '-' : `${r.cpu_median_err_ms}/${r.cpu_worst_err_ms}`,
    r.cpu_over_wall,
    r.deps_exact_pct ?? '-',
    r.links_right_pct ?? '-',
    r.deps_misplaced ? `${r.deps_misplaced} (${r.deps_misplaced_flagged_pct}%)` : '-',
    r.process_names.join(','),
    r.service_names.join(','),
    typeof r.cpu_attribution === 'string' ? r.cpu_attribution : JSON.stringify(r.cpu_attribution),
    JSON.stringify(r.overhead_ms),
    r.budget ? `${r.budget.serving_threads_ms} / ${r.budget.requests_ms} + ${r.budget.unattributed_ms} / ${r.budget.truth_sum_ms}` : '-',
    r.overhead_scale === undefined ? '-' : `${JSON.stringify(r.overhead_ms_concurrent)} x ${r.overhead_scale} (${r.cpu_within_pct_sequential_model})`,
  ]);
  console.log(['| ' + head.join(' | ') + ' |', ...lines.map((l) => '| ' + l.join(' | ') + ' |')].join('\n'));
}

describe('framework matrix', () => {
  const rows: MatrixRow[] = [];

  after(() => {
    if (rows.length === 0) return;
    mkdirSync(join(ROOT, 'test', 'results'), { recursive: true });
    const ran = new Set(rows.map((r) => r.framework));
    const earlier = existsSync(RESULTS) ? (JSON.parse(readFileSync(RESULTS, 'utf8')) as { rows: MatrixRow[] }).rows.filter((r) => !ran.has(r.framework)) : [];
    writeFileSync(RESULTS, JSON.stringify({ measured_at: new Date().toISOString(), rows: [...earlier, ...rows] }, null, 2) + '\n');
    printTable(rows);
  });

  for (const fw of FRAMEWORKS.filter((f) => !SELECTED || SELECTED.includes(f.name))) {
    describe(fw.name, () => {
      const service = `fw-${fw.name}`;
      const upstreamService = `fw-upstream-${fw.name}`;
      let server: RunningFramework;
      let upstream: RunningServer | null = null;
      let agent: RunningAgent;
      let truthFile: string;
      let overheads: Overheads = {};
      let comm: string;

      before(async () => {
        truthFile = join(mkdtempSync(join(tmpdir(), 'perfcatch-fw-')), `${fw.name}.truth`);
        if (fw.fanout) upstream = await startNodeServer({ OTEL_SERVICE_NAME: upstreamService });
        const env = { OTEL_SERVICE_NAME: service, PERFCATCH_TRUTH_FILE: truthFile, UPSTREAM_PORT: String(upstream?.port ?? 0) };
        if (fw.bindEnv) {
          const port = await freePort();
          agent = await startAgent(['--ports', String(port)]);
          server = await fw.start({ ...env, [fw.bindEnv]: `127.0.0.1:${port}` });
        } else {
          server = await fw.start(env);
          const ports = [server.port, ...(upstream ? [upstream.port] : [])].join(',');
          agent = await startAgent(['--ports', ports]);
        }
        comm = commOf(server.workerPids[0]!);
        // Warm-up (JIT, class loading, the upstream pool): recorded, not scored.
        await driveConcurrent(fw, server.port, `${fw.name}-warm`, WARMUP_PER_CONNECTION);
      });

      after(async () => {
        await agent?.stop();
        await server?.stop();
        await upstream?.stop();
      });

      /** Attribution marks of issue 10 missed, by mode: asserted by the marks test below. */
      const missedMarks: string[] = [];

      /** Asserts what every record must be (one per request, exact bytes, identity); the
       * attribution marks (CPU, CPU <= wall, own dependencies, links) are collected for the
       * marks test, so that a miss in one mode does not hide the other's. */
      function check(row: MatrixRow, opts: { serviceKnown: boolean } = { serviceKnown: true }): void {
        row.comm = comm;
        rows.push(row);
        console.log(`${fw.name} ${row.mode}:`, JSON.stringify(row));
        const failures: string[] = [];
        const expect = (ok: boolean, what: string) => ok || failures.push(what);
        const mark = (ok: boolean, what: string) => ok || missedMarks.push(`${row.mode}: ${what}`);
        expect(row.missing === 0, `${row.missing} requests without a record`);
        expect(row.extra === 0, `${row.extra} extra records`);
        expect(row.exact_records === row.requests, `${row.exact_records}/${row.requests} exact records`);
        mark(row.cpu_over_wall === 0, `${row.cpu_over_wall} requests with CPU above wall x 1.05 + 0.3 ms`);
        // Sequentially each request's own schedstat delta is exact truth; concurrently only
        // handler clock + calibrated overhead is (the "ceiling" column says how close that is).
        const cpuPct = row.cpu_within_pct_vs_schedstat ?? row.cpu_within_pct;
        if (fw.cpuMarkAsserted && cpuPct !== null) {
          mark(cpuPct >= CPU_WITHIN_PCT, `CPU within max(10%, 0.5 ms) for ${cpuPct}% (mark ${CPU_WITHIN_PCT}%)`);
        }
        if (fw.fanout) {
          mark((row.deps_exact_pct ?? 0) >= DEPS_PCT, `exactly own dependencies for ${row.deps_exact_pct}% (mark ${DEPS_PCT}%)`);
          mark((row.links_right_pct ?? 0) >= DEPS_PCT, `upstream linked to the right CLIENT span for ${row.links_right_pct}% (mark ${DEPS_PCT}%)`);
        }
        // Never silently wrong: a call the kernel could not tell apart says so.
        expect(row.deps_misplaced === 0 || row.deps_misplaced_flagged_pct === 100, `${row.deps_misplaced} calls under the wrong request, only ${row.deps_misplaced_flagged_pct}% marked inferred`);
        if (opts.serviceKnown) {
          expect(row.service_names.length === 1 && row.service_names[0] === service, `service_name ${JSON.stringify(row.service_names)}, want ${service}`);
        }
        expect(row.process_names.length === 1 && row.process_names[0] === fw.processName, `process_name ${JSON.stringify(row.process_names)}, want ${fw.processName} (comm: ${comm})`);
        assert.deepEqual(failures, [], `${fw.name} ${row.mode}`);
      }

      async function scoreMode(mode: string, sent: Sent[], window: [number, number], schedstatMs?: Map<string, number>, modeOverheads = overheads): Promise<MatrixRow> {
        await settle(agent, server.port, upstream?.port ?? null, sent);
        return score({
          framework: fw.name,
          model: fw.model,
          mode,
          sent,
          records: await recordsOn(agent, server.port),
          upstream: upstream ? await recordsOn(agent, upstream.port) : [],
          upstreamPort: upstream?.port ?? 0,
          truth: readTruth(truthFile),
          overheads: modeOverheads,
          schedstatMs,
          window,
          scoreCpu: true,
          onMiss: process.env.PERFCATCH_DEBUG_MATRIX ? (what, detail) => console.log(`miss ${fw.name} ${mode} ${what}`, JSON.stringify(detail)) : undefined,
        });
      }

      /**
       * Where the serving threads' CPU went during a run: the threads that ran handlers (or,
       * for runtimes that spread a request over threads, every calibrating thread).
       */
      function servingThreadsNs(sent: Sent[], before: Map<number, number>, afterRun: Map<number, number>): number {
        const truth = readTruth(truthFile);
        const tids = fw.calibrateOn === 'thread' ? new Set(sent.map((s) => truth.get(s.id)?.tid).filter((t) => t !== undefined)) : new Set(afterRun.keys());
        let servingNs = 0;
        for (const tid of tids) servingNs += (afterRun.get(tid) ?? 0) - (before.get(tid) ?? 0);
        return servingNs;
      }

      /**
       * Each kind's overhead under concurrency, measured the way the mixed run's budget is:
       * CONNECTIONS connections send only that kind, bracketed by quiet schedstat reads, and
       * (the serving threads' CPU - the handlers' clocks) / requests. Sequential overheads do
       * not shrink alike under concurrency: a plain request shares its wake-up with its
       * neighbours, a fanout's client work (connect, send, parse the upstream's answer) is its
       * own. One scale for every kind set aiohttp's fanout truth 0.5-0.9 ms below what the
       * thread spent, and the CPU mark turned on how many fanouts a run had.
       */
      async function calibrateConcurrent(): Promise<Overheads> {
        const out: Overheads = {};
        const kinds = [...new Set(Array.from({ length: 5 }, (_, i) => requestFor(fw, i).kind))];
        for (const kind of kinds) {
          const paths = Array.from({ length: 50 }, (_, i) => requestFor(fw, i)).filter((r) => r.kind === kind);
          const before = await quiet(server.allPids, fw.calibrationThreads);
          const sent = await driveConcurrent(fw, server.port, `${fw.name}-cal-${kind}`, CALIBRATION_PER_CONNECTION, (i) => paths[i % paths.length]!);
          const afterRun = await quiet(server.allPids, fw.calibrationThreads);
          const truth = await waitFor(`truth for ${kind} calibration`, () => {
            const t = readTruth(truthFile);
            return sent.every((x) => t.has(x.id)) ? t : undefined;
          }, 5_000, 5);
          const handlerNs = sent.reduce((a, x) => a + truth.get(x.id)!.cpu_ns, 0);
          out[kind] = Math.round(Math.max(0, servingThreadsNs(sent, before, afterRun) - handlerNs) / sent.length / 1e3) / 1e3;
        }
        return out;
      }

      async function cpuBudget(sent: Sent[], before: Map<number, number>, afterRun: Map<number, number>, unattributedBefore: number, modelOverheads: Overheads): Promise<CpuBudget> {
        const truth = readTruth(truthFile);
        const ids = new Set(sent.map((s) => s.id));
        const servingNs = servingThreadsNs(sent, before, afterRun);
        // Each connection's last request is reported by the idle flush: wait for every one.
        await settle(agent, server.port, upstream?.port ?? null, sent);
        const records = (await recordsOn(agent, server.port)).filter((r) => r.correlation_id !== null && ids.has(r.correlation_id));
        const truthSum = sent.reduce((a, s) => a + (truth.has(s.id) ? truthCpuMs(truth.get(s.id)!, s.kind, modelOverheads) : 0), 0);
        const handlerSum = sent.reduce((a, s) => a + (truth.get(s.id)?.cpu_ns ?? 0) / 1e6, 0);
        const r3 = (x: number) => Math.round(x * 1000) / 1000;
        return {
          serving_threads_ms: r3(servingNs / 1e6),
          requests_ms: r3(records.reduce((a, r) => a + requestCostMs(r), 0)),
          unattributed_ms: r3((await unattributedCpuMs(agent, server.allPids, Date.now())) - unattributedBefore),
          handler_sum_ms: r3(handlerSum),
          truth_sum_ms: r3(truthSum),
        };
      }

      it(`${fw.name}: sequential, calibrated from schedstat`, async () => {
        const from = Date.now() / 1e3;
        const { sent, samples, schedstatMs } = await driveSequential(fw, server, `${fw.name}-seq`, truthFile);
        overheads = calibrate(samples, fw.calibrateOn);
        const row = await scoreMode('sequential', sent, [from, Date.now() / 1e3], schedstatMs);
        row.truth_self_within_pct = truthSelfWithinPct(samples, fw.calibrateOn, overheads);
        if (process.env.PERFCATCH_DEBUG_MATRIX) console.log('calibration', fw.name, JSON.stringify(samples.map((x) => [x.kind, +(x.handlerNs / 1e6).toFixed(3), +(x.threadNs / 1e6).toFixed(3), +(x.processNs / 1e6).toFixed(3)])));
        check(row);
      });

      it(`${fw.name}: ${CONNECTIONS} concurrent connections`, async () => {
        assert.ok(Object.keys(overheads).length > 0, 'needs the sequential calibration');
        const concurrentOverheads = await calibrateConcurrent();
        const unattributedBefore = await unattributedCpuMs(agent, server.allPids, Date.now());
        const threadsBefore = await quiet(server.allPids, fw.calibrationThreads);
        const from = Date.now() / 1e3;
        const sent = await driveConcurrent(fw, server.port, `${fw.name}-conc`, PER_CONNECTION);
        const threadsAfter = await quiet(server.allPids, fw.calibrationThreads);
        const window: [number, number] = [from, Date.now() / 1e3];
        const budget = await cpuBudget(sent, threadsBefore, threadsAfter, unattributedBefore, concurrentOverheads);
        const scale = overheadScale(budget);
        const sequentialModel = await scoreMode('concurrent', sent, window);
        const row = await scoreMode('concurrent', sent, window, undefined, scaleOverheads(concurrentOverheads, scale));
        Object.assign(row, {
          budget,
          overhead_ms_concurrent: concurrentOverheads,
          overhead_scale: Math.round(scale * 1000) / 1000,
          cpu_within_pct_sequential_model: sequentialModel.cpu_within_pct,
        });
        check(row);
      });

      it(`${fw.name}: issue 10 attribution marks (CPU, CPU <= wall, own dependencies, links)`, () => {
        assert.deepEqual(missedMarks, [], `${fw.name}: marks missed`);
      });

      if (fw.processFilter) {
        it(`${fw.name}: --process ${fw.processFilter} selects its workers`, async () => {
          await agent.stop();
          agent = await startAgent(['--process', fw.processFilter!]);
          const from = Date.now() / 1e3;
          const sent = await driveConcurrent(fw, server.port, `${fw.name}-byname`, 5);
          const row = await scoreMode(`--process ${fw.processFilter}`, sent, [from, Date.now() / 1e3]);
          row.cpu_within_pct = row.cpu_median_err_ms = row.cpu_worst_err_ms = null; // identity run: not a CPU measurement
          // This agent started after the server exec'd: where setproctitle has overwritten the
          // environment since, its OTEL_SERVICE_NAME is gone (README, known limits).
          check(row, { serviceKnown: !fw.bindEnv });
        });
      }
    });
  }
});
