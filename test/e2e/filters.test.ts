/**
 * Issue 13, finding 5 and its test: a process outside --pids or --process yields no record and
 * no dependency, whether it was serving before the agent started (the loader seeds every
 * listening process, and adopts their open connections) or started after it; the processes
 * inside are recorded, their keep-alive connections from before the agent included. The
 * outside servers make outbound calls while serving (/fanout): none may become a dependency,
 * nor take room in the kernel's connection table; neither may the calls of a listening process
 * that calls out unasked (its first tracked syscall is a connect()). (--ports: adoption-and-filters.test.ts;
 * --namespace: k8s-agent.test.ts.)
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { ROOT, startAgent, type RunningAgent } from '../harness/agent.ts';
import { waitFor } from '../harness/ports.ts';
import { startServer } from '../harness/processes.ts';
import { getRequest, RawHttpClient } from '../harness/raw-client.ts';
import { startNodeServer, startPythonServer, type RunningServer } from '../harness/runtimes.ts';
import type { RequestRecord } from '../../src/types.ts';

interface Health {
  counters: { kernel: Record<string, number> };
}

const PER_CONNECTION = 4;

/**
 * A listening process that, unasked, calls `callee` every 100 ms on a new connection: started
 * before the agent, it is seeded as a server, and its first tracked syscall is a connect().
 */
const TICKER = `
const http = require('node:http');
const callee = Number(process.argv[1]);
const server = http.createServer((req, res) => res.end('tick\\n')).listen(0, '127.0.0.1', () => {
  console.log('LISTENING ' + server.address().port);
  setInterval(() => http.get({ host: '127.0.0.1', port: callee, path: '/tick', agent: false }, (r) => r.resume()).on('error', () => {}), 100);
});`;

const startTicker = (callee: number) => startServer(process.execPath, ['-e', TICKER, String(callee)]);

/** A keep-alive connection used once before the agent starts. */
async function openBefore(port: number, id: string): Promise<RawHttpClient> {
  const c = new RawHttpClient(port);
  assert.equal((await c.request(getRequest('/before', { 'X-Correlation-ID': id }))).status, 200);
  return c;
}

async function allRecords(agent: RunningAgent): Promise<RequestRecord[]> {
  return (await agent.get<{ requests: RequestRecord[] }>('/api/requests?limit=10000&since=60')).body.requests;
}

/**
 * Drives every server: PER_CONNECTION requests on a new connection to each, and on each old
 * (before-the-agent) connection; the outside servers serve /fanout calls to an inside one.
 * Then checks that exactly the inside servers' requests are recorded, with no dependency, and
 * that the outside ones left nothing: no record, no dependency, no tracked outbound connection.
 */
async function exercise(
  agent: RunningAgent,
  inside: { server: RunningServer; old?: RawHttpClient; label: string }[],
  outside: { server: RunningServer; old?: RawHttpClient; label: string }[],
  ticker: RunningServer,
): Promise<void> {
  const callee = inside[0]!.server.port;
  const expected: string[] = [];
  const drive = async (client: RawHttpClient, label: string, isInside: boolean) => {
    // An outside server's pooled call needs its pool warmed first.
    if (!isInside) assert.equal((await client.request(getRequest(`/warm?to=${callee}`))).status, 200);
    for (let i = 0; i < PER_CONNECTION; i++) {
      const id = `${label}-${i}`;
      const path = isInside ? `/in/${label}/${i}` : `/fanout?to=${callee}`;
      const res = await client.request(getRequest(path, { 'X-Correlation-ID': id }));
      assert.equal(res.status, 200, `${label}: ${res.body.toString()}`);
      if (isInside) expected.push(id);
    }
  };
  const jobs: Promise<void>[] = [];
  for (const [list, isInside] of [[inside, true], [outside, false]] as const) {
    for (const s of list) {
      jobs.push((async () => {
        const fresh = new RawHttpClient(s.server.port);
        await drive(fresh, `${s.label}-new`, isInside);
        await fresh.close();
      })());
      if (s.old) jobs.push(drive(s.old, `${s.label}-old`, isInside));
    }
  }
  await Promise.all(jobs);
  // Each outside server called the inside callee: a /warm-dep and, per /fanout, a /dep-new and a
  // /dep-pooled. Those are the callee's own requests, and recorded as such.
  const outsideConnections = outside.reduce((n, s) => n + (s.old ? 2 : 1), 0);
  const calleeRequests = outsideConnections * (1 + 2 * PER_CONNECTION);

  const records = await waitFor(`${expected.length} inside requests, ${calleeRequests} callee requests and a tick`, async () => {
    const all = await allRecords(agent);
    const mine = all.filter((r) => expected.includes(r.correlation_id ?? ''));
    const calls = all.filter((r) => r.local_port === callee && /^\/(warm-dep|dep-new|dep-pooled)$/.test(r.http_path ?? ''));
    const ticks = all.filter((r) => r.local_port === callee && r.http_path === '/tick');
    return mine.length >= expected.length && calls.length >= calleeRequests && ticks.length > 0 ? all : undefined;
  });
  const mine = records.filter((r) => r.correlation_id !== null && expected.includes(r.correlation_id));
  assert.deepEqual(mine.map((r) => r.correlation_id).sort(), [...expected].sort(), 'each inside request recorded once');
  const calls = records.filter((r) => r.local_port === callee && /^\/(warm-dep|dep-new|dep-pooled)$/.test(r.http_path ?? ''));
  assert.equal(calls.length, calleeRequests, "the outside servers' calls, recorded once each by the inside callee");

  const outsidePids = new Set([...outside.map((s) => s.server.pid), ticker.pid]);
  const outsidePorts = new Set([...outside.map((s) => s.server.port), ticker.port]);
  const leaked = records.filter((r) => outsidePids.has(r.pid) || outsidePorts.has(r.local_port));
  assert.deepEqual(leaked.map((r) => `${r.pid}:${r.local_port} ${r.http_path}`), [], 'no record of an outside process');
  const withDeps = records.filter((r) => r.dependencies.length > 0);
  assert.deepEqual(withDeps.map((r) => `${r.pid} ${r.http_path}`), [], 'no dependency anywhere (only outside processes make calls)');
  const kernel = (await agent.get<Health>('/health')).body.counters.kernel;
  assert.equal(kernel.client_conns, 0, 'no outbound connection of an outside process tracked');
  assert.equal(kernel.dependencies, 0);
  assert.equal(kernel.dep_unattributed, 0);
  assert.ok(kernel.conn_filtered! > 0, 'the outside servers\' connections were turned away at accept');
}

describe('--pids: a process outside the list yields no record and no dependency', () => {
  let inside: RunningServer;
  let outsideBefore: RunningServer;
  let outsideAfter: RunningServer;
  let ticker: RunningServer;
  let insideOld: RawHttpClient;
  let outsideOld: RawHttpClient;
  let agent: RunningAgent;

  before(async () => {
    inside = await startPythonServer();
    outsideBefore = await startNodeServer();
    ticker = await startTicker(inside.port);
    insideOld = await openBefore(inside.port, 'pids-in-before');
    outsideOld = await openBefore(outsideBefore.port, 'pids-out-before');
    agent = await startAgent(['--pids', String(inside.pid)]);
    outsideAfter = await startNodeServer();
  });
  after(async () => {
    await insideOld?.close();
    await outsideOld?.close();
    await agent?.stop();
    for (const s of [inside, outsideBefore, outsideAfter, ticker]) await s?.stop();
  });

  it(`inside (started before, old and new connections) recorded; outside started before and after: nothing`, async () => {
    await exercise(
      agent,
      [{ server: inside, old: insideOld, label: 'pids-in' }],
      [
        { server: outsideBefore, old: outsideOld, label: 'pids-out-before' },
        { server: outsideAfter, label: 'pids-out-after' },
      ],
      ticker,
    );
  });
});

describe('--process: a process of another name yields no record and no dependency', () => {
  // A name no other process on this host has: python3 run through a symlink of that name.
  const name = `pcf${randomBytes(4).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'perfcatch-filter-'));
  const python = join(dir, name);
  // The interpreter itself (python3 may be a shim that looks at its own name).
  symlinkSync(execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim(), python);
  const startInside = () => startServer(python, [join(ROOT, 'test', 'servers', 'python_http_server.py'), '0']);
  let insideBefore: RunningServer;
  let insideAfter: RunningServer;
  let outsideBefore: RunningServer;
  let outsideAfter: RunningServer;
  let ticker: RunningServer;
  let insideOld: RawHttpClient;
  let outsideOld: RawHttpClient;
  let agent: RunningAgent;

  before(async () => {
    insideBefore = await startInside();
    outsideBefore = await startNodeServer();
    ticker = await startTicker(insideBefore.port);
    insideOld = await openBefore(insideBefore.port, 'proc-in-before');
    outsideOld = await openBefore(outsideBefore.port, 'proc-out-before');
    agent = await startAgent(['--process', name]);
    insideAfter = await startInside();
    outsideAfter = await startNodeServer();
  });
  after(async () => {
    await insideOld?.close();
    await outsideOld?.close();
    await agent?.stop();
    for (const s of [insideBefore, insideAfter, outsideBefore, outsideAfter, ticker]) await s?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('inside started before (old and new connections) and after recorded; outside started before and after: nothing', async () => {
    await exercise(
      agent,
      [
        { server: insideBefore, old: insideOld, label: 'proc-in-before' },
        { server: insideAfter, label: 'proc-in-after' },
      ],
      [
        { server: outsideBefore, old: outsideOld, label: 'proc-out-before' },
        { server: outsideAfter, label: 'proc-out-after' },
      ],
      ticker,
    );
  });
});
