/**
 * Issue 13: an agent killed with SIGKILL (OOM killer, kubelet eviction) runs no cleanup code.
 * Its loader must still go, and with it every BPF program and link: nothing stays attached to
 * the host's syscalls and scheduler with no agent reading it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { loaderPid, startAgent, type RunningAgent } from '../harness/agent.ts';
import { waitFor } from '../harness/ports.ts';
import { getRequest, RawHttpClient } from '../harness/raw-client.ts';
import { startPythonServer, type RunningServer } from '../harness/runtimes.ts';

/** BPF object ids ("prog_id", "link_id") behind the open fds of `pid`. */
function bpfIdsHeldBy(pid: number): { progs: Set<number>; links: Set<number> } {
  const progs = new Set<number>();
  const links = new Set<number>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return { progs, links }; // gone
  }
  for (const fd of fds) {
    let target = '';
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    if (!target.startsWith('anon_inode:bpf')) continue;
    let info = '';
    try {
      info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    } catch {
      continue;
    }
    const prog = /^prog_id:\s+(\d+)/m.exec(info);
    const link = /^link_id:\s+(\d+)/m.exec(info);
    if (link) links.add(Number(link[1]));
    if (prog) progs.add(Number(prog[1])); // a link's fdinfo names its program too
  }
  return { progs, links };
}

/** Every process's BPF ids: what is still referenced anywhere on the host. */
function bpfIdsHeldAnywhere(): { progs: Set<number>; links: Set<number> } {
  const all = { progs: new Set<number>(), links: new Set<number>() };
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const held = bpfIdsHeldBy(Number(entry));
    for (const id of held.progs) all.progs.add(id);
    for (const id of held.links) all.links.add(id);
  }
  return all;
}

/** Links pinned under `dir`, and their programs (bpftool -f names each link's pins). */
function bpfIdsPinnedUnder(dir: string): { progs: Set<number>; links: Set<number> } {
  const links = JSON.parse(execFileSync('bpftool', ['--json', '-f', 'link', 'show'], { encoding: 'utf8' })) as { id: number; prog_id: number; pinned?: string[] }[];
  const mine = links.filter((l) => l.pinned?.some((p) => p.startsWith(`${dir}/`)));
  return { progs: new Set(mine.map((l) => l.prog_id)), links: new Set(mine.map((l) => l.id)) };
}

function alive(pid: number): boolean {
  try {
    // A zombie has released its fds and programs already.
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

describe('agent SIGKILLed', () => {
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

  it('its loader exits, removes its pins, and no BPF program or link of it stays loaded', async () => {
    const loader = loaderPid(agent.child.pid!);
    // The loader pinned its links and maps (README, Reliability): the pins hold the
    // attachments (and keep them after the loader), so they must go with the agent too.
    const pins = (await agent.get<{ pins: { state: string; dir: string } }>('/health')).body.pins;
    assert.equal(pins.state, 'fresh');
    assert.ok(existsSync(pins.dir), `${pins.dir} exists while the agent runs`);
    const byFd = bpfIdsHeldBy(loader);
    const byPin = bpfIdsPinnedUnder(pins.dir);
    const held = { progs: new Set([...byFd.progs, ...byPin.progs]), links: new Set([...byFd.links, ...byPin.links]) };
    assert.ok(held.links.size >= 10, `the loader holds its attachments as links, by fd or pin (${held.links.size})`);
    assert.ok(held.progs.size >= held.links.size, `and their programs (${held.progs.size})`);
    const client = new RawHttpClient(server.port);
    await client.request(getRequest('/before-kill', { 'X-Correlation-ID': 'before-kill' }));
    await waitFor('the request recorded', async () => {
      const r = await agent.get<{ count: number }>('/api/requests?correlation_id=before-kill&since=60');
      return r.body.count === 1 ? true : undefined;
    });

    const killedAt = Date.now();
    agent.child.kill('SIGKILL');
    await waitFor('the loader to exit', () => (alive(loader) ? undefined : true), 10_000, 20);
    const exitMs = Date.now() - killedAt;
    console.log(`loader exited ${exitMs} ms after the agent was killed`);

    const still = await waitFor('BPF objects released', () => {
      const now = bpfIdsHeldAnywhere();
      const progs = [...held.progs].filter((id) => now.progs.has(id));
      const links = [...held.links].filter((id) => now.links.has(id));
      return progs.length + links.length === 0 ? { progs, links } : undefined;
    }, 10_000, 50);
    assert.deepEqual(still, { progs: [], links: [] });
    assert.equal(existsSync(pins.dir), false, `${pins.dir} removed`);
    // And no link is attached anymore, pinned or not.
    const linked = new Set(
      (JSON.parse(execFileSync('bpftool', ['--json', 'link', 'show'], { encoding: 'utf8' })) as { id: number }[]).map((l) => l.id),
    );
    assert.deepEqual([...held.links].filter((id) => linked.has(id)), []);
    // The kernel agrees: none of the programs stays loaded (freed after an RCU grace period).
    const stillLoaded = await waitFor('programs unloaded', () => {
      const loaded = new Set(
        (JSON.parse(execFileSync('bpftool', ['--json', 'prog', 'show'], { encoding: 'utf8' })) as { id: number }[]).map((p) => p.id),
      );
      const left = [...held.progs].filter((id) => loaded.has(id));
      return left.length === 0 ? left : undefined;
    }, 10_000, 100);
    assert.deepEqual(stillLoaded, []);

    // The server goes on as before.
    const after = await client.request(getRequest('/after-kill'));
    assert.equal(after.status, 200);
    await client.close();
  });
});
