/**
 * The agent's memory under bench scenario g (grpc-go unary calls at saturation, 100 concurrent
 * streams on one connection): RSS, its peak and the V8 heap every few seconds, for finding what
 * takes the agent past its RSS bound. Not part of the bench's table.
 *   node test/bench/grpc-memory.ts [--seconds S] [--streams N] [--node-flags '...'] [--agent-args '...'] [--agent-output] [--cli DIR/dist/cli.js]
 *   (--cli: another build, as in live-cost.ts)
 *   [--snapshot, with --node-flags --heapsnapshot-signal=SIGUSR2: a heap snapshot 3 s after the load]
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { AGENT_NODE_FLAGS, CLI } from '../harness/agent.ts';
import { freePort, waitFor } from '../harness/ports.ts';
import { buildGrpcGo, startGrpcGoServer } from '../harness/grpc-peers.ts';
import { spawnTracked } from '../harness/processes.ts';
import { statusMb } from '../harness/proc-stat.ts';

const opt = (name: string, fallback: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
};
const seconds = Number(opt('--seconds', '40'));
const streams = Number(opt('--streams', '100'));
const memory = (pid: number) => ({ rss_mb: +statusMb(pid, 'VmRSS').toFixed(0), hwm_mb: +statusMb(pid, 'VmHWM').toFixed(0) });

const server = await startGrpcGoServer('/dev/null');
const client = buildGrpcGo();
const apiPort = await freePort();
const flags = [...AGENT_NODE_FLAGS, ...opt('--node-flags', '').split(' ').filter(Boolean)];
const agent = spawnTracked(process.execPath, [...flags, opt('--cli', CLI), 'agent', '--api-port', String(apiPort), '--ports', String(server.port), '--log-level', 'warn', ...opt('--agent-args', '').split(' ').filter(Boolean)], {});
try {
  await waitFor('agent', async () => ((await fetch(`http://127.0.0.1:${apiPort}/health`).catch(() => null))?.status === 200 ? true : undefined), 60_000);
  const started = performance.now();
  const sampler = setInterval(() => {
    console.log(JSON.stringify({ t: Math.round((performance.now() - started) / 1000), ...memory(agent.pid) }));
  }, 5_000);
  // Asynchronously, unlike grpc-scenario.ts, so that the samples above are taken meanwhile.
  const { stdout } = await promisify(execFile)(client, ['load', `127.0.0.1:${server.port}`, String(seconds), String(streams)], { encoding: 'utf8' });
  const load = JSON.parse(stdout) as { requests: number; rps: number };
  clearInterval(sampler);
  // The backlog the kernel ring held is handed over once the load stops: sample it too.
  for (let i = 0; i < 10; i++) {
    await new Promise((r) => setTimeout(r, 500));
    if (i === 5 && process.argv.includes('--snapshot')) process.kill(agent.pid, 'SIGUSR2');
    console.log(JSON.stringify({ after_ms: (i + 1) * 500, ...memory(agent.pid) }));
  }
  const health = (await (await fetch(`http://127.0.0.1:${apiPort}/health`)).json()) as { counters: { agent: Record<string, number>; kernel: Record<string, number> } };
  const h2 = Object.fromEntries(Object.entries({ ...health.counters.kernel, ...health.counters.agent }).filter(([k, v]) => /h2|lost|dropped/.test(k) && v));
  console.log(JSON.stringify(h2));
  console.log(JSON.stringify({ calls: load.requests, rps: load.rps, recorded: health.counters.agent['requests_recorded'], ...memory(agent.pid) }));
} finally {
  await agent.stop('SIGTERM');
  if (process.argv.includes('--agent-output')) console.log(agent.output());
  await server.stop();
}
