/**
 * The live agent's userspace cost at a fixed rate, with span export to a real Collector (as
 * bench scenario d), without the with/without alternation of run.ts: for profiling and quick
 * before/after comparisons. Prints loader and agent CPU µs per request for each round.
 *   node test/bench/live-cost.ts [--rate N] [--seconds S] [--rounds R] [--cpu-prof DIR] [--protocol http|grpc] [--node-flags '--perf-basic-prof'] [--agent-output FILE] [--wrap 'stdbuf -oL'] [--idle SECONDS] [--cli DIR/dist/cli.js] [--agent-args '--loader X']
 * --cli runs another build (a copy of dist/, build/ and the loader kept for a before/after comparison).
 * With --bpf-profile SECONDS, the in-kernel time by eBPF source line (bpf-profile.ts) is sampled in round --perf-round.
 * With --bpf, each round also prints the in-kernel ns per request and per run of each eBPF program (bpf_stats on for the run),
 * and --idle SECONDS the in-kernel µs per second with no request (the hooks that run for the whole host).
 * With --perf SECONDS, `perf record -g` samples the agent for that long in the first round (perf.data in cwd; --perf-freq HZ, default 499; --perf-round N, default 0).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_NODE_FLAGS, CLI, ROOT, loaderPid } from '../harness/agent.ts';
import { agentProgramIds, bpfPerProgram, bpfStats, setBpfStats } from '../harness/bpf-stats.ts';
import { ohaBinary } from '../harness/oha.ts';
import { cpuMicros, statusMb } from '../harness/proc-stat.ts';
import { startCollector } from '../harness/collector.ts';
import { freePort, waitFor } from '../harness/ports.ts';
import { spawnTracked, startServer } from '../harness/processes.ts';

const opt = (name: string, fallback: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
};
const rate = Number(opt('--rate', '5000'));
const seconds = Number(opt('--seconds', '20'));
const rounds = Number(opt('--rounds', '3'));
const profDir = opt('--cpu-prof', '');
const protocol = opt('--protocol', 'http');
const perfSeconds = Number(opt('--perf', '0'));
const perfRound = Number(opt('--perf-round', '0'));
const bpfOn = process.argv.includes('--bpf');
const bpfProfileSeconds = Number(opt('--bpf-profile', '0'));

/** CPU µs by thread name (comm) of a process: main thread, V8 workers, libuv pool. */
function threadMicros(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).replace(/\d+$/, '#');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(name, (out.get(name) ?? 0) + (Number(f[11]) + Number(f[12])) * 10_000);
    } catch {}
  }
  return out;
}
function sysMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[12]) * 10_000;
}
/** The main thread's context switches so far (voluntary = it slept and was woken). */
function mainSwitches(pid: number): { voluntary: number; involuntary: number } {
  const st = readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8');
  return { voluntary: Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(st)?.[1] ?? 0), involuntary: Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(st)?.[1] ?? 0) };
}

function oha(url: string): number {
  const out = execFileSync(ohaBinary(), ['-z', `${seconds}s`, '-q', String(rate), '-c', '64', '--no-tui', '--output-format', 'json', url], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  const j = JSON.parse(out) as { statusCodeDistribution: Record<string, number> };
  return Object.values(j.statusCodeDistribution).reduce((a, b) => a + b, 0);
}

const collector = await startCollector();
const server = await startServer(process.execPath, [join(ROOT, 'test/bench/bench-server.mjs')], { OTEL_SERVICE_NAME: 'bench-node' });
const apiPort = await freePort();
const endpoint = protocol === 'grpc' ? collector.grpcEndpoint : collector.httpEndpoint;
const extra = opt('--node-flags', '').split(' ').filter(Boolean);
const flags = [...AGENT_NODE_FLAGS, ...extra, ...(profDir ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [])];
const wrap = opt('--wrap', '').split(' ').filter(Boolean);
const [cmd, ...cmdArgs] = [...wrap, process.execPath];
const agent = spawnTracked(cmd!, [...cmdArgs, ...flags, opt('--cli', CLI), 'agent', '--api-port', String(apiPort), '--ports', String(server.port), '--log-level', 'warn', '--otlp-endpoint', endpoint, ...opt('--agent-args', '').split(' ').filter(Boolean)], {
  env: { ...process.env, OTEL_EXPORTER_OTLP_PROTOCOL: protocol === 'grpc' ? 'grpc' : 'http/protobuf' },
});
const health = async () => (await (await fetch(`http://127.0.0.1:${apiPort}/health`)).json()) as { counters: { agent: { requests_recorded: number } } };
await waitFor('agent', async () => ((await fetch(`http://127.0.0.1:${apiPort}/health`).catch(() => null))?.status === 200 ? true : undefined), 60_000);
const lpid = loaderPid(agent.pid);
const url = `http://127.0.0.1:${server.port}/hello`;
if (bpfOn) setBpfStats(true);
try {
  const idleSeconds = Number(opt('--idle', '0'));
  if (idleSeconds > 0) {
    // The floor: what the agent and the loader take per second with no request at all.
    const i0 = threadMicros(agent.pid);
    const l0 = cpuMicros(lpid);
    const k0 = bpfOn ? bpfStats(lpid) : null;
    await new Promise((res) => setTimeout(res, idleSeconds * 1000));
    const threads = Object.fromEntries([...threadMicros(agent.pid)].map(([k, v]) => [k, +((v - (i0.get(k) ?? 0)) / idleSeconds / 1000).toFixed(1)] as const).filter(([, v]) => v > 0));
    console.log(JSON.stringify({ idle_ms_per_s: threads, loader_ms_per_s: +((cpuMicros(lpid) - l0) / idleSeconds / 1000).toFixed(1) }));
    if (k0) {
      // The in-kernel floor: the hooks that run for the whole host (context switches, other
      // processes' syscalls) with no request to serve; per second, as "requests" of 1 s.
      const k1 = bpfStats(lpid);
      const perProgram = Object.entries(bpfPerProgram(k0, k1, idleSeconds)).filter(([, p]) => p.nsPerRequest >= 1000);
      const kernel = Object.fromEntries(perProgram.map(([name, p]) => [name, `${(p.nsPerRequest / 1000).toFixed(0)} us/s = ${p.runsPerRequest.toFixed(0)} x ${p.nsPerRun.toFixed(0)} ns`]));
      console.log(JSON.stringify({ idle_kernel_us_per_s: Math.round((k1.ns - k0.ns) / idleSeconds / 1000), ...kernel }));
    }
  }
  for (let r = 0; r < rounds; r++) {
    const t0 = threadMicros(agent.pid);
    const s0 = sysMicros(agent.pid);
    const a0 = cpuMicros(agent.pid);
    const l0 = cpuMicros(lpid);
    const h0 = (await health()).counters.agent.requests_recorded;
    const w0 = mainSwitches(agent.pid);
    const k0 = bpfOn ? bpfStats(lpid) : null;
    const started = performance.now();
    const perf = r === perfRound && perfSeconds > 0 ? spawnTracked('perf', ['record', '-F', opt('--perf-freq', '499'), '-g', '-p', String(agent.pid), '-o', 'perf.data', '--', 'sleep', String(perfSeconds)]) : null;
    // perf samples the whole host while oha runs in a child; collected once both are done.
    const profiled = r === perfRound && bpfProfileSeconds > 0 ? spawnTracked(process.execPath, ['-e', `import(${JSON.stringify(new URL('./bpf-profile.ts', import.meta.url).href)}).then((m) => console.log(m.bpfLineProfile(new Map(${JSON.stringify([...agentProgramIds(lpid)])}), ${bpfProfileSeconds})))`]) : null;
    const n = oha(url);
    await perf?.exited;
    if (profiled) {
      await profiled.exited;
      console.log(profiled.output());
    }
    await new Promise((res) => setTimeout(res, 1_500));
    const a1 = cpuMicros(agent.pid);
    const s1 = sysMicros(agent.pid);
    const threads = Object.fromEntries([...threadMicros(agent.pid)].map(([k, v]) => [k, +((v - (t0.get(k) ?? 0)) / n).toFixed(1)] as const).filter(([, v]) => v > 0));
    const l1 = cpuMicros(lpid);
    const h1 = (await health()).counters.agent.requests_recorded;
    const w1 = mainSwitches(agent.pid);
    const k1 = k0 ? bpfStats(lpid) : null;
    const elapsedS = (performance.now() - started) / 1000;
    const wakeups_per_s = { voluntary: Math.round((w1.voluntary - w0.voluntary) / elapsedS), involuntary: Math.round((w1.involuntary - w0.involuntary) / elapsedS) };
    console.log(
      JSON.stringify({ round: r, requests: n, recorded: h1 - h0, agent_us: +((a1 - a0) / n).toFixed(1), loader_us: +((l1 - l0) / n).toFixed(1), total_us: +((a1 - a0 + l1 - l0) / n).toFixed(1), agent_sys_us: +((s1 - s0) / n).toFixed(1), agent_hwm_mb: +statusMb(agent.pid, 'VmHWM').toFixed(0), threads, main_thread_switches_per_s: wakeups_per_s }),
    );
    if (k0 && k1) {
      const perProgram = Object.entries(bpfPerProgram(k0, k1, n)).filter(([, p]) => p.nsPerRequest >= 1);
      const kernel = Object.fromEntries(perProgram.map(([name, p]) => [name, `${p.nsPerRequest.toFixed(0)} ns/req = ${p.runsPerRequest.toFixed(2)} x ${p.nsPerRun.toFixed(0)} ns`]));
      console.log(JSON.stringify({ round: r, kernel_ns_per_request: Math.round((k1.ns - k0.ns) / n), ...kernel }));
    }
  }
  const spans = collector.spanCount();
  console.log(JSON.stringify({ spans_received: spans }));
} finally {
  if (bpfOn) setBpfStats(false);
  await agent.stop('SIGTERM');
  if (opt('--agent-output', '')) writeFileSync(opt('--agent-output', ''), agent.output());
  await server.stop();
  await collector.stop();
}
