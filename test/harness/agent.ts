/** Runs the built agent (dist/cli.js) under the test's own Node 24, as a user would. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freePort, scaledTimeout, waitFor } from './ports.ts';
import { spawnTracked, type Spawned } from './processes.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = `${ROOT}dist/cli.js`;
/** The V8 flags the product runs the agent with (the bin's shebang, `npm start`). */
export const AGENT_NODE_FLAGS = ['--max-old-space-size=160', '--max-semi-space-size=2'];

export interface RunningAgent extends Spawned {
  api: string;
  get<T = unknown>(path: string): Promise<{ status: number; body: T }>;
  metrics(): Promise<string>;
}

/** `wrap` runs the agent under another command, e.g. setpriv to drop capabilities. */
export async function startAgent(args: string[], env: Record<string, string> = {}, wrap: string[] = []): Promise<RunningAgent> {
  const apiPort = await freePort();
  const argv = [...AGENT_NODE_FLAGS, CLI, 'agent', '--api-port', String(apiPort), ...args];
  const [cmd, cmdArgs] = wrap.length ? [wrap[0]!, [...wrap.slice(1), process.execPath, ...argv]] : [process.execPath, argv];
  const s = spawnTracked(cmd, cmdArgs, { env: { ...process.env, ...env } });
  const api = `http://127.0.0.1:${apiPort}`;
  const get = async <T>(path: string) => {
    for (let attempt = 1; ; attempt++) {
      // A GET is idempotent: retry once when the server closed an idle keep-alive connection
      // just as it was reused (a starved agent, e.g. at nice 10 under a saturating load).
      const res = await fetch(api + path).catch(() => fetch(api + path));
      // 429: queries took their share of the agent's thread (src/api/load-guard.ts), as a
      // test's polling for records does; a client waits as Retry-After says, as the CLI's user
      // would. Other statuses are the answer.
      if (res.status === 429 && attempt < 10) {
        await res.arrayBuffer();
        await new Promise((r) => setTimeout(r, 1000 * Number(res.headers.get('retry-after') ?? 1)));
        continue;
      }
      return { status: res.status, body: (await res.json()) as T };
    }
  };
  try {
    await waitFor(
      'agent /health',
      async () => {
        if (s.child.exitCode !== null) throw new Error(`agent exited ${s.child.exitCode}: ${s.output()}`);
        const res = await fetch(`${api}/health`).catch(() => null);
        return res?.status === 200 ? true : undefined;
      },
      scaledTimeout(60_000),
    );
  } catch (err) {
    // The caller never gets this agent to stop: an agent left running keeps its programs
    // attached under the next tests, and the test file from exiting.
    await s.stop();
    throw err;
  }
  return { ...s, api, get, metrics: async () => (await fetch(`${api}/metrics`)).text() };
}

/** The agent's loader child (its comm starts with "perfcatch"). */
export function loaderPid(agentPid: number): number {
  const children = readFileSync(`/proc/${agentPid}/task/${agentPid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  const loader = children.find((pid) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim().startsWith('perfcatch');
    } catch {
      return false;
    }
  });
  if (loader === undefined) throw new Error(`no loader among the agent's children ${children.join(',')}`);
  return loader;
}

/** The serving-thread CPU (ms) the agent charged to no request for these processes (/health),
 * once a stats record newer than `after` (ms since epoch) has arrived: they come every second. */
export async function unattributedCpuMs(agent: RunningAgent, pids: number[], after: number): Promise<number> {
  await new Promise((r) => setTimeout(r, Math.max(0, after + 1_500 - Date.now())));
  const { body } = await agent.get<{ cpu_unattributed_ms: { pid: number; ms: number }[] }>('/health');
  return body.cpu_unattributed_ms.filter((p) => pids.includes(p.pid)).reduce((a, p) => a + p.ms, 0);
}
