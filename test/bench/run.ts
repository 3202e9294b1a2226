/**
 * `npm run bench`: the same servers measured with and without the agent, alternating, in one
 * run. Not part of the test suite. Needs root (the agent loads eBPF), wrk (Debian) and oha
 * (`cargo install oha`, done here when missing) for the fixed-rate scenario.
 *
 * Scenarios:
 *   a  Node hello-world at saturation (wrk, keep-alive)
 *   b  nginx serving a static file (wrk, keep-alive)
 *   c  a server spending ~1 ms of CPU per request (wrk, keep-alive)
 *   d  a fixed rate of 5,000 req/s for 60 s (oha -q), with span export to a real collector
 *   e  as a, with the agent at nice 10 instead of SCHED_IDLE (--sched-idle=false): the other
 *      side of the trade, fewer records shed for less application throughput
 *   f  as d at 1,000 req/s: the rate most services run at, reported as millicores per 1,000
 *      req/s (CPU per second at that rate; numerically the µs per request), the figure users
 *      compare agents by
 *   g  gRPC unary calls at saturation: a grpc-go server, its client's 100 concurrent streams on
 *      one connection (test/bench/grpc-scenario.ts); per request = per call
 *   h  as g with 10 concurrent streams
 *   i  as f with the spans gzip-compressed (OTEL_EXPORTER_OTLP_COMPRESSION=gzip; the default
 *      is none): what compression costs, beside f
 *
 * Each with-agent run starts a fresh agent and gives it --agent-warmup seconds (30) of the
 * same load before measuring, as the server got its own warm-up: what is measured is the agent
 * as it runs for days, and that first stretch (V8 compiling the agent's code) is reported on
 * its own, as the cold-start cost per request.
 *
 * Reports throughput and p50/p99 latency ratios (with agent / without), in-kernel BPF ns per
 * request (kernel.bpf_stats_enabled: run_time_ns summed over our programs / requests), the
 * agent's userspace CPU µs per request (loader + Node, /proc/<pid>/stat), the agent's peak
 * RSS, records lost at each stage, and spans received by the collector versus requests.
 * Prints a table and writes JSON under test/bench/results/.
 *
 *   node test/bench/run.ts [--scenarios a,b,c,d,e,f,g,h,i] [--duration SEC] [--rounds N] [--rate N] [--low-rate N] [--rate-duration SEC] [--agent-warmup SEC]
 *   node test/bench/run.ts --table results/FILE.json   (the table of an earlier run)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, hostname, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { ROOT, startAgent, type RunningAgent } from '../harness/agent.ts';
import { bpfPerProgram, bpfStats, setBpfStats } from '../harness/bpf-stats.ts';
import { cpuMicros, statusMb } from '../harness/proc-stat.ts';
import { startCollector, type RunningCollector } from '../harness/collector.ts';
import { ohaBinary } from '../harness/oha.ts';
import { startServer } from '../harness/processes.ts';
import { startNginx } from '../harness/runtimes.ts';
import { GRPC_SCENARIOS, startGrpcBench } from './grpc-scenario.ts';

interface Options {
  scenarios: string[];
  duration: number;
  rounds: number;
  rate: number;
  lowRate: number;
  rateDuration: number;
  /** Seconds of load a fresh agent gets before it is measured (0: measured from its start). */
  agentWarmup: number;
}

function parseOptions(argv: string[]): Options {
  const get = (name: string, fallback: string) => {
    const i = argv.indexOf(name);
    return i >= 0 && argv[i + 1] ? argv[i + 1]! : fallback;
  };
  return {
    scenarios: get('--scenarios', 'a,b,c,d,e,f,g,h,i').split(','),
    duration: Number(get('--duration', '10')),
    rounds: Number(get('--rounds', '2')),
    rate: Number(get('--rate', '5000')),
    lowRate: Number(get('--low-rate', '1000')),
    rateDuration: Number(get('--rate-duration', '60')),
    agentWarmup: Number(get('--agent-warmup', '30')),
  };
}

interface LoadResult {
  requests: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
}

/** wrk's "Latency Distribution" lines: "50%  1.23ms". */
function wrkPercentile(out: string, p: string): number {
  const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)`, 'm').exec(out);
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

function runWrk(url: string, seconds: number, connections = 32): LoadResult {
  const out = execFileSync('wrk', ['-t2', `-c${connections}`, `-d${seconds}s`, '--latency', url], { encoding: 'utf8' });
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN);
  return { requests, rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN), p50Ms: wrkPercentile(out, '50'), p99Ms: wrkPercentile(out, '99') };
}

function runOha(url: string, seconds: number, rate: number): LoadResult {
  const out = execFileSync(ohaBinary(), ['-z', `${seconds}s`, '-q', String(rate), '-c', '64', '--no-tui', '--output-format', 'json', url], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  const j = JSON.parse(out) as { summary: { requestsPerSec: number }; latencyPercentiles: Record<string, number>; statusCodeDistribution: Record<string, number> };
  const requests = Object.values(j.statusCodeDistribution).reduce((a, b) => a + b, 0);
  return { requests, rps: j.summary.requestsPerSec, p50Ms: j.latencyPercentiles.p50! * 1000, p99Ms: j.latencyPercentiles.p99! * 1000 };
}

function loaderPidOf(agentPid: number): number {
  const out = spawnSync('pgrep', ['-P', String(agentPid), '-f', 'perfcatch-loader'], { encoding: 'utf8' }).stdout.trim();
  return Number(out.split('\n')[0]);
}

interface AgentRun {
  load: LoadResult;
  bpfNsPerRequest: number;
  bpfPerProgram: ReturnType<typeof bpfPerProgram>;
  agentCpuUsPerRequest: number;
  agentPeakRssMb: number;
  loaderPeakRssMb: number;
  lost: Record<string, number>;
  spansReceived: number | null;
  recorded: number;
  /** The fresh agent's warm-up load, not in the figures above. */
  coldStart: { requests: number; agentCpuUsPerRequest: number } | null;
}

/** A load of the scenario's shape lasting `seconds`. */
type Load = (seconds: number) => LoadResult;

async function withAgent(ports: number[], load: Load, seconds: number, warmup: number, collector: RunningCollector | null, extraArgs: string[], env: Record<string, string>): Promise<AgentRun> {
  const args = ['--ports', ports.join(','), '--log-level', 'warn', ...extraArgs];
  if (collector) args.push('--otlp-endpoint', collector.httpEndpoint);
  const agent: RunningAgent = await startAgent(args, env);
  const loaderPid = loaderPidOf(agent.pid);
  try {
    let coldStart: AgentRun['coldStart'] = null;
    if (warmup > 0) {
      const before = cpuMicros(agent.pid) + cpuMicros(loaderPid);
      const warm = load(warmup);
      await drained(agent);
      coldStart = { requests: warm.requests, agentCpuUsPerRequest: (cpuMicros(agent.pid) + cpuMicros(loaderPid) - before) / warm.requests };
      if (collector) await new Promise((r) => setTimeout(r, 3_000)); // the warm-up's spans arrive before the count starts
    }
    const spansBefore = collector ? collector.spanCount() : 0;
    setBpfStats(true);
    const bpf0 = bpfStats(loaderPid);
    const cpu0 = cpuMicros(agent.pid) + cpuMicros(loaderPid);
    // /health's counters run from the agent's start: the warm-up's share is taken off.
    const health0 = (await agent.get<{ lost: Record<string, number>; counters: { agent: { requests_recorded: number } } }>('/health')).body;
    const h0 = health0.counters.agent.requests_recorded;
    const result = load(seconds);
    // Let the agent drain what the load produced before reading its CPU and counters: at
    // saturation it runs behind the load (nice 10) and catches up afterwards.
    await drained(agent);
    const bpf1 = bpfStats(loaderPid);
    const cpu1 = cpuMicros(agent.pid) + cpuMicros(loaderPid);
    setBpfStats(false);
    const health = (await agent.get<{ lost: Record<string, number>; counters: { agent: { requests_recorded: number } } }>('/health')).body;
    let spansReceived: number | null = null;
    if (collector) {
      await new Promise((r) => setTimeout(r, 3_000));
      spansReceived = collector.spanCount() - spansBefore;
    }
    return {
      load: result,
      bpfNsPerRequest: (bpf1.ns - bpf0.ns) / result.requests,
      bpfPerProgram: bpfPerProgram(bpf0, bpf1, result.requests),
      agentCpuUsPerRequest: (cpu1 - cpu0) / result.requests,
      agentPeakRssMb: statusMb(agent.pid, 'VmHWM'),
      loaderPeakRssMb: statusMb(loaderPid, 'VmHWM'),
      lost: Object.fromEntries(Object.entries(health.lost).map(([k, v]) => [k, v - (health0.lost[k] ?? 0)])),
      spansReceived,
      recorded: health.counters.agent.requests_recorded - h0,
      coldStart,
    };
  } catch (e) {
    console.error(`bench: agent output:\n${agent.output().slice(-3000)}`);
    throw e;
  } finally {
    await agent.stop();
  }
}

/** Resolves once the agent's recorded count has stopped growing for a second. */
async function drained(agent: RunningAgent): Promise<void> {
  let previous = -1;
  for (;;) {
    const recorded = (await agent.get<{ counters: { agent: { requests_recorded: number } } }>('/health')).body.counters.agent.requests_recorded;
    if (recorded === previous) return;
    previous = recorded;
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

/** The middle value; the mean of the two middle values for an even count (2 rounds: their mean). */
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface ScenarioResult {
  scenario: string;
  description: string;
  without: LoadResult[];
  with: AgentRun[];
  throughputRatio: number;
  p50Ratio: number;
  p99Ratio: number;
}

async function scenario(
  id: string,
  description: string,
  ports: number[],
  load: Load,
  seconds: number,
  rounds: number,
  warmup: number,
  collector: RunningCollector | null,
  agentArgs: string[] = [],
  agentEnv: Record<string, string> = {},
): Promise<ScenarioResult> {
  console.error(`bench ${id}: ${description}`);
  load(seconds); // the server's warm-up (JIT, caches), not counted
  const without: LoadResult[] = [];
  const withA: AgentRun[] = [];
  for (let r = 0; r < rounds; r++) {
    without.push(load(seconds));
    withA.push(await withAgent(ports, load, seconds, warmup, collector, agentArgs, agentEnv));
  }
  return withRatios({ scenario: id, description, without, with: withA });
}

function table(results: ScenarioResult[]): string {
  const rows = [
    ['scenario', 'req/s without', 'req/s with', 'throughput', 'p50', 'p99', 'BPF ns/req', 'agent µs/req', 'agent µs/req, cold start', 'peak RSS agent / loader', 'records lost / requests', 'payloads shed', 'spans/requests'],
  ];
  for (const r of results) {
    const w = r.with;
    // Shed payloads are counted per capture: the request is still recorded, without HTTP fields.
    const lost = w.reduce((n, x) => n + Object.entries(x.lost).reduce((a, [k, v]) => a + (k === 'kernel_capture_shed' ? 0 : v), 0), 0);
    const shed = w.reduce((n, x) => n + (x.lost.kernel_capture_shed ?? 0), 0);
    const requests = w.reduce((n, x) => n + x.load.requests, 0);
    const spans = w.every((x) => x.spansReceived !== null)
      ? `${w.reduce((n, x) => n + x.spansReceived!, 0)}/${w.reduce((n, x) => n + x.load.requests, 0)}`
      : 'n/a';
    rows.push([
      `${r.scenario}: ${r.description}`,
      median(r.without.map((x) => x.rps)).toFixed(0),
      median(w.map((x) => x.load.rps)).toFixed(0),
      r.throughputRatio.toFixed(2),
      r.p50Ratio.toFixed(2),
      r.p99Ratio.toFixed(2),
      median(w.map((x) => x.bpfNsPerRequest)).toFixed(0),
      median(w.map((x) => x.agentCpuUsPerRequest)).toFixed(1),
      coldStart(w),
      `${Math.max(...w.map((x) => x.agentPeakRssMb)).toFixed(0)} / ${Math.max(...w.map((x) => x.loaderPeakRssMb)).toFixed(0)} MB`,
      `${lost}/${requests}`,
      String(shed),
      spans,
    ]);
  }
  const lines = ['| ' + rows[0]!.join(' | ') + ' |', '|' + rows[0]!.map(() => '---').join('|') + '|', ...rows.slice(1).map((r) => '| ' + r.join(' | ') + ' |')];
  const f = results.find((r) => r.scenario === 'f');
  if (f) lines.unshift(millicores(f), '');
  return lines.join('\n');
}

/** Loader + agent µs per request over each fresh agent's warm-up load (median), or n/a. */
function coldStart(runs: AgentRun[]): string {
  const cold = runs.flatMap((x) => (x.coldStart ? [x.coldStart.agentCpuUsPerRequest] : []));
  return cold.length ? median(cold).toFixed(1) : 'n/a';
}

/**
 * Millicores per 1,000 req/s: CPU ms per second at 1,000 req/s, which is the µs per request
 * (1,000 × µs / 1,000 ms).
 */
function millicores(r: ScenarioResult): string {
  const agent = median(r.with.map((x) => x.agentCpuUsPerRequest));
  const kernel = median(r.with.map((x) => x.bpfNsPerRequest)) / 1000;
  return `${r.scenario}: per 1,000 req/s with span export: ${agent.toFixed(1)} millicores loader + agent, ${kernel.toFixed(1)} millicores in the kernel (a fresh agent's first stretch: ${coldStart(r.with)})`;
}

/** Ratios (with agent / without) of the medians of the raw runs; also recomputes an earlier run's. */
function withRatios(r: Pick<ScenarioResult, 'scenario' | 'description' | 'without' | 'with'>): ScenarioResult {
  return {
    ...r,
    throughputRatio: median(r.with.map((x) => x.load.rps)) / median(r.without.map((x) => x.rps)),
    p50Ratio: median(r.with.map((x) => x.load.p50Ms)) / median(r.without.map((x) => x.p50Ms)),
    p99Ratio: median(r.with.map((x) => x.load.p99Ms)) / median(r.without.map((x) => x.p99Ms)),
  };
}

async function main(): Promise<void> {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    // This file's opening comment is the usage.
    const source = readFileSync(new URL(import.meta.url), 'utf8');
    console.log(source.slice(source.indexOf('/**') + 3, source.indexOf('*/')).replace(/^ \* ?/gm, '').trim());
    return;
  }
  const tableOf = process.argv.indexOf('--table');
  if (tableOf >= 0) {
    const report = JSON.parse(readFileSync(process.argv[tableOf + 1]!, 'utf8')) as { machine: string; results: ScenarioResult[] };
    console.log(`${report.machine}\n\n${table(report.results.map(withRatios))}`);
    return;
  }
  const opts = parseOptions(process.argv.slice(2));
  const results: ScenarioResult[] = [];
  // One Collector per export scenario: its file of received spans is read whole, and d's
  // 300,000 spans come near the longest string V8 makes.
  const withCollector = async <T>(run: (c: RunningCollector) => Promise<T>): Promise<T> => {
    const collector = await startCollector();
    // The Collector stands for a backend, which runs on other machines: here it shares the two
    // cores with the server, so it runs under SCHED_IDLE, like the agent, and takes no CPU the
    // server wants (at normal priority its work for 5,000 spans/s alone tripled the server's p99).
    execFileSync('chrt', ['--idle', '--all-tasks', '--pid', '0', String(collector.pid)]);
    try {
      return await run(collector);
    } finally {
      await collector.stop();
    }
  };
  // A plain server: the ground-truth servers read /proc on every request, which would
  // dominate a hello-world.
  const node = await startServer(process.execPath, [join(ROOT, 'test/bench/bench-server.mjs')], { OTEL_SERVICE_NAME: 'bench-node' });
  try {
    if (opts.scenarios.includes('a')) {
      const url = `http://127.0.0.1:${node.port}/hello`;
      results.push(await scenario('a', 'Node hello-world, saturation', [node.port], (t) => runWrk(url, t), opts.duration, opts.rounds, opts.agentWarmup, null));
    }
    if (opts.scenarios.includes('b')) {
      const nginx = await startNginx({ upstreamPort: node.port, staticFiles: { 'index.html': Buffer.alloc(4096, 'n') } });
      try {
        const url = `http://127.0.0.1:${nginx.staticPort}/index.html`;
        results.push(await scenario('b', 'nginx static 4 KB file', [nginx.staticPort], (t) => runWrk(url, t), opts.duration, opts.rounds, opts.agentWarmup, null));
      } finally {
        await nginx.stop();
      }
    }
    if (opts.scenarios.includes('c')) {
      const url = `http://127.0.0.1:${node.port}/compute?ms=1`;
      results.push(await scenario('c', '1 ms of CPU per request', [node.port], (t) => runWrk(url, t, 4), opts.duration, opts.rounds, opts.agentWarmup, null));
    }
    if (opts.scenarios.includes('e')) {
      const url = `http://127.0.0.1:${node.port}/hello`;
      results.push(
        await scenario('e', 'as a, agent at nice 10 (--sched-idle=false)', [node.port], (t) => runWrk(url, t), opts.duration, opts.rounds, opts.agentWarmup, null, ['--sched-idle=false']),
      );
    }
    if (opts.scenarios.includes('d')) {
      const url = `http://127.0.0.1:${node.port}/hello`;
      results.push(
        await withCollector((c) => scenario('d', `${opts.rate} req/s for ${opts.rateDuration} s, spans exported`, [node.port], (t) => runOha(url, t, opts.rate), opts.rateDuration, 1, opts.agentWarmup, c)),
      );
    }
    // f at the low rate, and i the same with the spans gzip-compressed: what compression costs.
    const lowRate: [string, string, Record<string, string>][] = [
      ['f', `${opts.lowRate} req/s for ${opts.rateDuration} s, spans exported`, {}],
      ['i', 'as f, spans gzip-compressed', { OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip' }],
    ];
    for (const [id, description, env] of lowRate.filter(([id]) => opts.scenarios.includes(id))) {
      const url = `http://127.0.0.1:${node.port}/hello`;
      results.push(await withCollector((c) => scenario(id, description, [node.port], (t) => runOha(url, t, opts.lowRate), opts.rateDuration, 1, opts.agentWarmup, c, [], env)));
    }
    for (const [id, streams] of GRPC_SCENARIOS.filter(([id]) => opts.scenarios.includes(id))) {
      const g = await startGrpcBench();
      try {
        const r = await scenario(id, `grpc-go unary calls, saturation (${streams} streams, one connection)`, [g.port], (t) => g.load(t, streams), opts.duration, opts.rounds, opts.agentWarmup, null);
        console.error(`bench ${id}: calls recorded ${r.with.map((w) => `${w.recorded} of ${w.load.requests}`).join(', ')}`);
        results.push(r);
      } finally {
        await g.stop();
      }
    }
  } finally {
    await node.stop();
  }
  const machine = `${hostname()}: Linux ${release()}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`;
  const report = { date: new Date().toISOString(), machine, options: opts, results };
  const dir = join(ROOT, 'test/bench/results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `bench-${report.date.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
  writeFileSync(join(dir, 'latest.json'), JSON.stringify(report, null, 2) + '\n');
  console.log(`\n${machine}\n\n${table(results)}\n\nwritten: ${file}`);
}

await main();
