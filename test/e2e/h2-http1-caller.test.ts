/**
 * Outbound gRPC calls made by HTTP/1 requests (an Express-style node:http handler calling a
 * gRPC backend over one pooled channel, test/servers/node-http1-grpc-frontend.mjs). No served
 * HTTP/2 stream claims such a call: it goes to the HTTP/1 request of its process whose window
 * holds its start (src/pipeline/h2-http1-callers.ts), joining that record late. Truth: the
 * frontend forwards each request's x-correlation-id, which the agent reads on the backend's
 * end of the stream, so which backend stream answered which request is known without the
 * agent's attribution; the backend's SERVER span must be the CLIENT span's child.
 *   - one request at a time: every call attributed, `exact`, and right;
 *   - several at once (one event loop): every call attributed to a request whose window holds
 *     it, none lost; those marked `exact` are right; how many `inferred` ones are is printed.
 * CPU: the handler's gRPC syscalls are its request's (bpf/h2.bpf.h, h2_io): the requests hold
 * at least 80% of the frontend's loop thread, and with the unattributed no more than it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startAgent, unattributedCpuMs, type RunningAgent } from '../harness/agent.ts';
import { pool } from '../harness/h2-requests.ts';
import { startH2Server, startScript } from '../harness/h2-server.ts';
import { waitFor } from '../harness/ports.ts';
import type { Spawned } from '../harness/processes.ts';
import type { RequestRecord } from '../../src/types.ts';

const SEQUENTIAL = 100;
const CONCURRENT = 300;
const CONCURRENCY = 10;
const ECHO_PATH = '/perfcatch.test.Echo/Call';

/** A thread's on-CPU ms so far (schedstat). */
function threadCpuMs(pid: number, tid = pid): number {
  return Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
}

interface H2Counters {
  calls: number;
  callsUnattributed: number;
  callsOrphaned: number;
}

describe('outbound gRPC calls from HTTP/1 requests', () => {
  let backend: Spawned & { port: number; grpcPort: number };
  let frontend: Spawned & { port: number };
  let agent: RunningAgent;
  const agentHttp = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });

  before(async () => {
    backend = await startH2Server();
    frontend = await startScript('node-http1-grpc-frontend.mjs', [String(backend.grpcPort)], 'LISTENING', {});
    agent = await startAgent(['--ports', `${frontend.port},${backend.grpcPort}`]);
  });
  after(async () => {
    agentHttp.destroy();
    await agent?.stop();
    await frontend?.stop();
    await backend?.stop();
  });

  async function get(id: string, i: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: frontend.port, path: `/call/${i}`, agent: agentHttp, headers: { 'x-correlation-id': id } }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d));
        res.on('end', () => resolve(Number(body)));
      });
      req.on('error', reject);
    });
  }

  async function counters(): Promise<H2Counters> {
    return ((await agent.get<{ counters: { h2?: H2Counters } }>('/health')).body.counters.h2 ?? { calls: 0, callsUnattributed: 0, callsOrphaned: 0 }) as H2Counters;
  }

  /** Runs `n` requests, `concurrency` at once; returns each one's records (frontend, backend) once every call settled. */
  async function run(prefix: string, n: number, concurrency: number) {
    const before = await counters();
    const cpuBefore = { thread: threadCpuMs(frontend.pid), unattributed: await unattributedCpuMs(agent, [frontend.pid], Date.now()) };
    const outcome = new Map<string, number>();
    await pool(n, concurrency, async (i) => {
      outcome.set(`${prefix}${i}`, await get(`${prefix}${i}`, i));
    });
    const query = (protocol: string) => `/api/requests?limit=10000&protocol=${protocol}&correlation_id_regex=${encodeURIComponent(`^${prefix}`)}`;
    // Calls settle a few seconds after their request's record: wait until each is somewhere.
    const settled = await waitFor(`${n} calls settled`, async () => {
      const c = await counters();
      return c.calls + c.callsUnattributed + c.callsOrphaned - (before.calls + before.callsUnattributed + before.callsOrphaned) >= n ? c : undefined;
    }, 60_000, 500);
    const front = (await agent.get<{ requests: RequestRecord[] }>(query('http/1.1'))).body.requests;
    const back = (await agent.get<{ requests: RequestRecord[] }>(query('h2'))).body.requests;
    assert.equal(front.length, n, 'one frontend record per request');
    assert.equal(back.length, n, 'one backend record per call');
    assert.equal(settled.calls - before.calls, n, 'every call attributed to a request');
    assert.equal(settled.callsUnattributed - before.callsUnattributed, 0);
    assert.equal(settled.callsOrphaned - before.callsOrphaned, 0);
    const thread = threadCpuMs(frontend.pid) - cpuBefore.thread;
    const unattributed = (await unattributedCpuMs(agent, [frontend.pid], Date.now())) - cpuBefore.unattributed;
    const requests = front.reduce((sum, f) => sum + f.cpu_time_ms, 0);
    console.log(`# ${prefix}: frontend requests' CPU ${requests.toFixed(1)} ms + unattributed ${unattributed.toFixed(1)} ms, its loop thread ${thread.toFixed(1)} ms (requests ${((100 * requests) / thread).toFixed(1)}%)`);
    // The handler's gRPC syscalls are its request's, as an HTTP/1 call's would be (they had
    // gone to the HTTP/2 streams, then to no one: 37% of the thread in the requests).
    assert.ok(requests >= 0.8 * thread, `requests' CPU ${requests.toFixed(1)} ms under 80% of the loop thread's ${thread.toFixed(1)} ms`);
    assert.ok(requests + unattributed <= thread * 1.02, 'no CPU counted twice');
    return { front, requests, thread, unattributed, backBySpan: new Map(back.map((b) => [b.parent_span_id, b])), backById: new Map(back.map((b) => [b.correlation_id!, b])), outcome };
  }

  it(`${SEQUENTIAL} requests one at a time: each has its call, exact, linked to the backend's stream`, async () => {
    const { front, backById, outcome } = await run('s-', SEQUENTIAL, 1);
    for (const f of front) {
      const id = f.correlation_id!;
      assert.equal(f.dependencies.length, 1, `${id}: one call`);
      const d = f.dependencies[0]!;
      assert.equal(d.protocol, 'h2');
      assert.equal(d.http_path, ECHO_PATH);
      assert.equal(d.grpc_status, outcome.get(id), `${id}: the call's grpc-status`);
      assert.equal(d.caller_attribution, 'exact', `${id}: one request under way`);
      const b = backById.get(id)!;
      assert.equal(b.trace_id, f.trace_id, `${id}: the backend in the frontend's trace`);
      assert.equal(b.parent_span_id, d.span_id, `${id}: the backend's parent is this CLIENT span`);
      assert.equal(d.bytes_sent, b.bytes_received);
      assert.equal(d.bytes_received, b.bytes_sent);
    }
  });

  it(`${CONCURRENT} requests, ${CONCURRENCY} at once on one event loop: every call attributed inside its request's window, the exact ones right`, async () => {
    const { front, backBySpan } = await run('c-', CONCURRENT, CONCURRENCY);
    let calls = 0;
    const tally = { exact: 0, exactRight: 0, inferred: 0, inferredRight: 0 };
    for (const f of front) {
      const start = f.timestamp * 1000;
      for (const d of f.dependencies) {
        calls++;
        assert.ok(d.timestamp * 1000 >= start - 0.001 && d.timestamp * 1000 <= start + f.duration_ms + 0.001, `${f.correlation_id}: its call began in its window`);
        const right = backBySpan.get(d.span_id)?.correlation_id === f.correlation_id;
        tally[d.caller_attribution]++;
        if (right) tally[d.caller_attribution === 'exact' ? 'exactRight' : 'inferredRight']++;
        if (d.caller_attribution === 'exact') assert.ok(right, `${f.correlation_id}: an exact attribution is the right call`);
      }
    }
    assert.equal(calls, CONCURRENT, 'every call on exactly one request');
    console.log(`# ${CONCURRENT} calls, ${CONCURRENCY} requests at once: ${tally.exact} exact (${tally.exactRight} right), ${tally.inferred} inferred (${tally.inferredRight} right)`);
  });
});
