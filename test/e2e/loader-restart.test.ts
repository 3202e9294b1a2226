/**
 * Issue 13, finding 1, on the real kernel: the loader is SIGKILLed ten times while a real load
 * client (wrk, ~2,000 req/s on 10 keep-alive connections that stay open across every kill)
 * keeps sending, never paused. The kernel state outlives the loader (maps and links pinned to
 * bpffs, loader/src/pins.rs): the programs stay attached while no loader runs, the ring buffer
 * keeps what they write, and the next loader takes them over and drains it. So every request
 * sent must be recorded exactly once, with its own path (none altered, none twice), on the
 * connections that were open before each restart too; what was under way at each kill is
 * finished by the kernel and recorded, not lost; kernel counters go on accumulating (and are
 * not counted twice); and when the agent stops, the pins go and nothing stays attached.
 * Against a loader that pins nothing (before), about 7,000 of wrk's requests a kill were
 * neither recorded nor counted.
 *
 * A second agent with --bpf-pin-dir on a directory that is no bpffs runs as before: it says
 * why in /health, and a restart reloads (counted: what was in flight is lost).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loaderPid, startAgent, type RunningAgent } from '../harness/agent.ts';
import { waitFor } from '../harness/ports.ts';
import { spawnTracked, type Spawned } from '../harness/processes.ts';
import { getRequest, RawHttpClient } from '../harness/raw-client.ts';
import { startGoServer, startPythonServer, type RunningServer } from '../harness/runtimes.ts';
import type { RequestRecord } from '../../src/types.ts';

const KILLS = 10;
/** Per round: requests on fresh connections and on one keep-alive connection. */
const FRESH = 15;
const KEEP_ALIVE = 15;
/** Per round: requests whose head the server has read when the loader dies. */
const IN_FLIGHT = 3;
/** Per round: wrk's load before the kill, paced at about 2,000 req/s (10 connections, 4 ms
 * between requests); wrk never stops until the end. */
const LOAD_MS = 1_500;
const WRK_CONNECTIONS = 10;
const WRK_PACE_MS = 4;

/** wrk script: request n of thread t is GET /w/t/n with X-Correlation-ID wt-n; done() prints
 * "SENT t n" per thread, so every request sent is known. wrk calls the first thread's
 * request() once before starting, to check what it returns (script_verify_request): that
 * call takes n = 0. */
const WRK_SCRIPT = `
local threads = {}
local next_id = 1
function setup(thread)
  thread:set("tid", next_id)
  table.insert(threads, thread)
  next_id = next_id + 1
end
function init(args)
  n = tid == 1 and -1 or 0
  pace = tonumber(args[1])
end
function delay()
  return pace
end
function request()
  n = n + 1
  return wrk.format("GET", "/w/" .. tid .. "/" .. n, { ["X-Correlation-ID"] = "w" .. tid .. "-" .. n })
end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    io.write(string.format("SENT %d %d\\n", t:get("tid"), t:get("n")))
  end
end
`;

type Requests = { count: number; requests: RequestRecord[] };
interface Health {
  status: string;
  lost: Record<string, number>;
  counters: { kernel: Record<string, number>; agent: { loader_restarts: number } };
  pins: { state: string; dir: string | null; reason: string | null; state_id: number; skipped: number } | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * /api/requests, retried while the query ran over its 300 ms wall-clock budget (422): the
 * agent runs under SCHED_IDLE, and this machine's CPUs are busy with wrk and the servers.
 * (agent.get itself waits out the load guard's 429.)
 */
async function query(agent: RunningAgent, params: string): Promise<RequestRecord[]> {
  for (let attempt = 0; ; attempt++) {
    const r = await agent.get<Requests>(`/api/requests?${params}`);
    if (r.status === 422 && attempt < 30) {
      await sleep(1_000);
      continue;
    }
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.requests;
  }
}

/**
 * Wrk records of the last 9 s, by correlation id, added to `into` (for the connections seen
 * after each restart); a request recorded twice (another request_id under the same id) goes
 * into `twice`.
 */
async function collectWrk(agent: RunningAgent, into: Map<string, RequestRecord>, twice: Set<string>): Promise<void> {
  for (const t of [1, 2]) {
    const got = await query(agent, `since=0.15&limit=10000&correlation_id_regex=${encodeURIComponent(`^w${t}-[0-9]+$`)}`);
    for (const r of got) {
      const prior = into.get(r.correlation_id!);
      if (prior && prior.request_id !== r.request_id) twice.add(r.correlation_id!);
      into.set(r.correlation_id!, structuredClone(r));
    }
  }
}

/**
 * Every record of wrk thread `t`'s requests 1..`n` (from the database: more than the memory
 * buffer holds), by blocks of 10,000 ids.
 */
async function wrkRecords(agent: RunningAgent, t: number, n: number): Promise<RequestRecord[]> {
  const out: RequestRecord[] = [];
  for (let block = 0; block * 10_000 <= n; block++) {
    const re = block === 0 ? `^w${t}-[0-9]{1,4}$` : `^w${t}-${block}[0-9]{4}$`;
    out.push(...(await query(agent, `since=30&limit=10000&correlation_id_regex=${encodeURIComponent(re)}`)));
  }
  return out;
}

/** "a-b,c" for sorted numbers. */
function ranges(ns: number[]): string {
  const out: string[] = [];
  for (let i = 0; i < ns.length; ) {
    let j = i;
    while (j + 1 < ns.length && ns[j + 1] === ns[j]! + 1) j++;
    out.push(i === j ? `${ns[i]}` : `${ns[i]}-${ns[j]}`);
    i = j + 1;
  }
  return out.join(',');
}

/** The program links pinned under a state directory. */
function pinnedLinks(dir: string): string[] {
  try {
    return readdirSync(join(dir, 'links'));
  } catch {
    return [];
  }
}

describe(`loader SIGKILLed ${KILLS} times under ~2,000 req/s (wrk, never paused): every request recorded once, none altered, in-flight ones finished`, () => {
  let server: RunningServer;
  let go: RunningServer;
  let agent: RunningAgent | undefined;
  let wrk: Spawned | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'perfcatch-restart-'));

  before(async () => {
    server = await startPythonServer();
    go = await startGoServer();
    // Every record also goes to SQLite: wrk sends far more than the memory buffer keeps.
    agent = await startAgent(['--ports', `${server.port},${go.port}`, '--db', join(dir, 'requests.db')]);
  });
  after(async () => {
    wrk?.child.kill('SIGKILL');
    await agent?.stop();
    await server?.stop();
    await go?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`${KILLS} kills x (${LOAD_MS / 1000} s of wrk + ${FRESH} fresh + ${KEEP_ALIVE} keep-alive requests, ${IN_FLIGHT} in flight at the kill): all recorded exactly`, { timeout: 600_000 }, async () => {
    const a = agent!;
    const first = (await a.get<Health>('/health')).body.pins;
    assert.equal(first?.state, 'fresh', `the loader pins its state: ${JSON.stringify(first)}`);
    const pinsDir = first!.dir!;
    assert.ok(pinnedLinks(pinsDir).length >= 10, `links pinned under ${pinsDir}`);
    /** Every record seen, by request id, as first seen complete. */
    const seen = new Map<string, RequestRecord>();
    const wrkSeen = new Map<string, RequestRecord>();
    const twice = new Set<string>();
    let inFlightSent = 0;
    const inFlightDone: Promise<unknown>[] = [];
    const script = join(dir, 'ids.lua');
    writeFileSync(script, WRK_SCRIPT);
    const wrkArgs = ['-t2', `-c${WRK_CONNECTIONS}`, '-d600s', '--timeout', '60s', '-s', script, `http://127.0.0.1:${go.port}/`, '--', String(WRK_PACE_MS)];
    /** wrk's connections, by client port: the same ones in every round. */
    let wrkPorts: string | null = null;
    const wrkStart = Date.now();
    wrk = spawnTracked('wrk', wrkArgs);
    let restartedAt = 0;
    let skipped = 0;

    for (let round = 0; round <= KILLS; round++) {
      const roundFrom = Date.now();
      const ids: string[] = [];
      const fresh = Array.from({ length: FRESH }, async (_, i) => {
        const id = `r${round}-fresh-${i}`;
        ids.push(id);
        const client = new RawHttpClient(server.port);
        await client.request(getRequest(`/fresh/${round}/${i}`, { 'X-Correlation-ID': id, Connection: 'close' }));
        await client.close();
      });
      const keepAlive = (async () => {
        const client = new RawHttpClient(server.port);
        for (let i = 0; i < KEEP_ALIVE; i++) {
          const id = `r${round}-ka-${i}`;
          ids.push(id);
          await client.request(getRequest(`/ka/${round}/${i}`, { 'X-Correlation-ID': id }));
        }
        await client.close();
      })();
      await Promise.all([...fresh, keepAlive]);
      const got = await waitFor(`round ${round}: ${ids.length} records`, async () => {
        const r = await query(a, `correlation_id_regex=${encodeURIComponent(`^r${round}-`)}&limit=1000`);
        return r.length >= ids.length ? r : undefined;
      });
      assert.equal(got.length, ids.length, `round ${round}: each request recorded once`);
      for (const r of got) {
        const [, kind, i] = /^r\d+-(fresh|ka)-(\d+)$/.exec(r.correlation_id ?? '') ?? [];
        assert.equal(r.http_path, `/${kind}/${round}/${i}`, `round ${round}: ${r.correlation_id} has its own path`);
        assert.equal(r.http_status, 200);
        seen.set(r.request_id, structuredClone(r));
      }
      await new Promise((r) => setTimeout(r, Math.max(0, roundFrom + LOAD_MS - Date.now())));
      await collectWrk(a, wrkSeen, twice);
      // wrk's connections were open before every restart: each is recorded again after it.
      if (round > 0) {
        const after = [...wrkSeen.values()].filter((r) => r.timestamp * 1000 > restartedAt + 100);
        const ports = [...new Set(after.map((r) => r.remote_port))].sort().join(',');
        assert.equal(new Set(after.map((r) => r.remote_port)).size, WRK_CONNECTIONS, `round ${round}: every wrk connection recorded after the restart`);
        assert.equal(ports, wrkPorts, `round ${round}: the same ${WRK_CONNECTIONS} keep-alive connections as before the restarts`);
      } else {
        wrkPorts = [...new Set([...wrkSeen.values()].map((r) => r.remote_port))].sort().join(',');
        assert.equal(wrkPorts.split(',').length, WRK_CONNECTIONS);
      }
      if (round === KILLS) break;

      // Requests whose heads the server reads, then the loader dies before their responses.
      for (let k = 0; k < IN_FLIGHT; k++) {
        const client = new RawHttpClient(server.port);
        inFlightSent++;
        inFlightDone.push(
          client.request(getRequest(`/compute?ms=2500`, { 'X-Correlation-ID': `inflight-${round}-${k}`, Connection: 'close' })).finally(() => client.close()),
        );
      }
      await new Promise((r) => setTimeout(r, 300 + Math.floor(Math.random() * 300)));
      const before = (await a.get<Health>('/health')).body.counters.agent.loader_restarts;
      process.kill(loaderPid(a.pid), 'SIGKILL');
      const h = await waitFor(`loader restart ${round + 1}`, async () => {
        const h = await a.get<Health>('/health');
        return h.status === 200 && h.body.counters.agent.loader_restarts === before + 1 ? h.body : undefined;
      }, 60_000);
      restartedAt = Date.now();
      assert.equal(h.pins?.state, 'reused', `restart ${round + 1}: the new loader took the kernel state over (${JSON.stringify(h.pins)})`);
      assert.equal(h.pins?.dir, pinsDir);
      assert.equal(h.pins?.state_id, first!.state_id, 'the same ring buffer');
      skipped += h.pins?.skipped ?? 0;
      await collectWrk(a, wrkSeen, twice);
    }
    await Promise.all(inFlightDone);

    // wrk stops (it may send for up to 100 ms more) and says how many requests each thread sent.
    wrk!.child.kill('SIGINT');
    assert.equal(await wrk!.exited, 0, wrk!.output());
    const wrkSeconds = (Date.now() - wrkStart) / 1000;
    const sent = [...wrk!.output().matchAll(/^SENT (\d+) (\d+)$/gm)].map((m) => [Number(m[1]), Number(m[2])] as const);
    assert.equal(sent.length, 2, wrk!.output());
    const wrkSent = sent.reduce((acc, [, n]) => acc + n, 0);
    await new Promise((r) => setTimeout(r, 1_500)); // the idle flush reports the last request on each connection
    let missing = 0;
    let recorded = 0;
    const missingIds: string[] = [];
    const noStatus: RequestRecord[] = [];
    for (const [t, n] of sent) {
      const byId = new Map<number, RequestRecord>();
      for (const r of await wrkRecords(a, t, n)) {
        const i = Number(r.correlation_id!.split('-')[1]);
        if (byId.has(i)) twice.add(r.correlation_id!);
        byId.set(i, r);
        assert.equal(r.http_path, `/w/${t}/${i}`, `${r.correlation_id} has its own path`);
        assert.equal(r.local_port, go.port);
        if (r.http_status !== 200) noStatus.push(r);
      }
      const gone = Array.from({ length: n }, (_, k) => k + 1).filter((i) => !byId.has(i));
      missing += gone.length;
      recorded += byId.size;
      if (gone.length) missingIds.push(`w${t}: ${ranges(gone).slice(0, 300)}`);
      assert.equal(byId.size - (n - gone.length), 0, `w${t}: nothing recorded that wrk did not send`);
    }
    const losses = (await a.get<Health>('/health')).body.lost;
    console.log(`# wrk: ${wrkSent} requests sent in ${wrkSeconds.toFixed(1)} s (${Math.round(wrkSent / wrkSeconds)} req/s) across ${KILLS} loader kills; ${recorded} recorded, ${missing} missing, ${twice.size} recorded twice; ${skipped} ring records the agent had received skipped by the next loader; losses ${JSON.stringify(losses)}`);
    if (noStatus.length) console.log(`# without a status: ${JSON.stringify(noStatus.slice(0, 3))}`);
    assert.equal(missing, 0, `every wrk request recorded; missing ${missingIds.join('; ')}`);
    assert.equal(noStatus.length, 0, `every wrk request with its status (${noStatus.length} without; losses ${JSON.stringify(losses)})`);
    assert.equal(twice.size, 0, `no request recorded twice: ${[...twice].slice(0, 10).join(',')}`);

    // No earlier record was altered by a later request.
    const all = await query(a, `limit=10000&since=60&correlation_id_regex=${encodeURIComponent('^(r[0-9]+|inflight)-')}`);
    const byId = new Map(all.map((r) => [r.request_id, r] as const));
    let altered = 0;
    for (const [id, r] of seen) if (JSON.stringify(byId.get(id)) !== JSON.stringify(r)) altered++;
    assert.equal(altered, 0, `${altered} of ${seen.size} records altered`);
    assert.equal(seen.size, (KILLS + 1) * (FRESH + KEEP_ALIVE));

    // What was in flight at each kill: the kernel kept tracking it, the next loader drained it.
    const health = (await a.get<Health>('/health')).body;
    const inFlight = all.filter((r) => r.correlation_id?.startsWith('inflight-'));
    const lost = health.lost.loader_restart_in_flight ?? 0;
    console.log(`# in flight: ${inFlightSent} sent, ${inFlight.length} recorded, ${lost} counted lost; losses ${JSON.stringify(health.lost)}`);
    assert.equal(inFlight.length, inFlightSent, 'every in-flight request recorded');
    for (const r of inFlight) assert.match(r.http_path ?? '', /^\/compute\?/);
    assert.equal(lost, 0);
    for (const [stage, n] of Object.entries(health.lost)) assert.equal(n, 0, `no loss counted at ${stage}`);

    // The kernel's request counter went on over the eleven loaders (one kernel state, counted once).
    const total = wrkSent + seen.size + inFlightSent;
    const kernelRequests = await waitFor('kernel counters of the last loader', async () => {
      const n = (await a.get<Health>('/health')).body.counters.kernel.requests ?? 0;
      return n >= total ? n : undefined;
    }, 5_000).catch(async () => (await a.get<Health>('/health')).body.counters.kernel.requests);
    console.log(`# kernel requests counter ${kernelRequests} for ${total} requests`);
    assert.ok(kernelRequests! >= total && kernelRequests! < total * 1.02, `kernel requests ${kernelRequests} for ${total} requests: accumulated, not summed twice`);

    // A clean stop removes the pins: nothing stays attached.
    await a.stop();
    agent = undefined;
    assert.equal(existsSync(pinsDir), false, `${pinsDir} removed`);
  });
});

describe('loader without bpffs (--bpf-pin-dir on another filesystem): as before, and says so', () => {
  let server: RunningServer;
  let agent: RunningAgent;
  const dir = mkdtempSync(join(tmpdir(), 'perfcatch-nopins-'));

  before(async () => {
    server = await startPythonServer();
    agent = await startAgent(['--ports', String(server.port), '--bpf-pin-dir', dir]);
  });
  after(async () => {
    await agent?.stop();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('/health says why nothing is pinned; a killed loader is reloaded and what was in flight counted lost', { timeout: 120_000 }, async () => {
    const h = (await agent.get<Health>('/health')).body;
    assert.equal(h.pins?.state, 'off');
    assert.match(h.pins?.reason ?? '', /is not on a BPF filesystem/);
    assert.deepEqual(readdirSync(dir), [], 'nothing created there');
    const client = new RawHttpClient(server.port);
    const inflight = client.request(getRequest('/compute?ms=2500', { 'X-Correlation-ID': 'nopins-inflight' }));
    await new Promise((r) => setTimeout(r, 800));
    const stateId = h.pins!.state_id;
    process.kill(loaderPid(agent.pid), 'SIGKILL');
    const after = await waitFor('the loader restarted', async () => {
      const r = await agent.get<Health>('/health');
      return r.status === 200 && r.body.counters.agent.loader_restarts === 1 ? r.body : undefined;
    }, 60_000);
    assert.equal(after.pins?.state, 'off');
    assert.notEqual(after.pins?.state_id, stateId, 'a new kernel state');
    await inflight;
    const res = await client.request(getRequest('/after', { 'X-Correlation-ID': 'nopins-after' }));
    assert.equal(res.status, 200);
    await client.close();
    const rec = await waitFor('the request after the restart', async () => (await query(agent, 'correlation_id=nopins-after'))[0]);
    assert.equal(rec.http_path, '/after');
    const lost = await waitFor('in flight counted lost', async () => {
      const n = (await agent.get<Health>('/health')).body.lost.loader_restart_in_flight ?? 0;
      return n >= 1 ? n : undefined;
    }, 5_000);
    assert.equal(lost, 1);
  });
});
