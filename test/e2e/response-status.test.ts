/**
 * The HTTP/1 response status read in the kernel (bpf/io.bpf.h final_response_status): from
 * the response's first write when it holds a whole final status line, with no ring-buffer
 * record of the response's head; from the captured head otherwise (a split or short first
 * write, an interim-class code, bytes that are not a status line), as before.
 *
 * Two views of the same exchanges against a raw server that writes each status line the way
 * the path asks (test/servers/scripted-status-server.mjs): the real loader's records (status
 * field, and which requests had response bytes captured), then the agent's http_status. The
 * same for outbound calls: the server calls a second one, which answers in each of the ways,
 * and the status is read from the response's first read.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseAgentArgs } from '../../src/config.ts';
import type { DecodedRecord, KernelData, KernelDependency, KernelRequest } from '../../src/decode/records.ts';
import { LoaderProcess } from '../../src/loader/loader-process.ts';
import { ROOT, startAgent, type RunningAgent } from '../harness/agent.ts';
import { waitFor } from '../harness/ports.ts';
import { startServer, type Spawned } from '../harness/processes.ts';
import { getRequest, RawHttpClient } from '../harness/raw-client.ts';
import type { RequestRecord } from '../../src/types.ts';

/** Path, the status userspace must report, and the kernel's status field (0: it read none). */
const CASES: { path: string; status: number | null; kernel: number }[] = [
  { path: '/one/200', status: 200, kernel: 200 },
  { path: '/one/404', status: 404, kernel: 404 },
  { path: '/one/999', status: 999, kernel: 999 },
  { path: '/bare/204', status: 204, kernel: 204 },
  { path: '/http10', status: 200, kernel: 200 },
  { path: '/split', status: 201, kernel: 0 },
  { path: '/tiny', status: 202, kernel: 0 },
  { path: '/one/150', status: 150, kernel: 0 },
  { path: '/garbage', status: null, kernel: 0 },
];

const PC_DIR_RESPONSE = 2;

/** Each case once, in order, on one keep-alive connection (so request seq i+1 is case i),
 * then each again as an outbound call (seq CASES.length + i + 1) to the upstream. */
async function sendAll(port: number, upstreamPort: number, tag: string): Promise<void> {
  const client = new RawHttpClient(port);
  for (const [i, c] of CASES.entries()) {
    const res = await client.request(getRequest(c.path, { 'X-Request-Id': `${tag}-${i}` }));
    if (c.status !== null) assert.equal(res.status, c.status, `${c.path}: the server's own answer`);
  }
  for (const [i, c] of CASES.entries()) {
    const res = await client.request(getRequest(`/via/${upstreamPort}${c.path}`, { 'X-Request-Id': `${tag}-via-${i}` }));
    assert.equal(res.status, 200, `${c.path} through the upstream`);
  }
  await client.close();
}

describe('HTTP/1 response status', () => {
  let server: Spawned & { port: number };
  let upstream: Spawned & { port: number };

  before(async () => {
    const script = join(ROOT, 'test', 'servers', 'scripted-status-server.mjs');
    server = await startServer(process.execPath, [script, '0']);
    upstream = await startServer(process.execPath, [script, '0']);
  });

  after(async () => {
    await server?.stop();
    await upstream?.stop();
  });

  it('the kernel reads a final status line from the first write (or read, for a call), and captures the head only otherwise', async () => {
    const config = parseAgentArgs(['--ports', String(server.port)], {});
    const records: DecodedRecord[] = [];
    const loader = new LoaderProcess(
      { ...config, cgroups: [], bpfPinDir: '' },
      {
        // A data record's bytes are a view into the frame: its length is all that is kept here.
        onRecord: (rec) => records.push(rec),
        onMalformed: (err) => assert.fail(`malformed frame: ${err.message}`),
        onLog: () => {},
        onStateChange: () => {},
      },
    );
    await loader.start();
    try {
      await sendAll(server.port, upstream.port, 'kernel');
      // The last request on the connection is reported by its close (or the idle flush).
      const requests = await waitFor('a record per request', () => {
        const mine = records.filter((r): r is KernelRequest => r.kind === 'request' && r.localPort === server.port);
        return mine.length >= 2 * CASES.length ? mine : undefined;
      });
      assert.equal(new Set(requests.map((r) => r.connId)).size, 1, 'one connection');
      const data = records.filter((r): r is KernelData => r.kind === 'data' && r.connId === requests[0]!.connId);
      const calls = records.filter((r): r is KernelDependency => r.kind === 'dependency' && r.parentConnId === requests[0]!.connId);
      for (const [i, c] of CASES.entries()) {
        const r = requests.find((x) => x.seq === i + 1);
        assert.ok(r, `${c.path}: record for seq ${i + 1}`);
        assert.equal(r.status, c.kernel, `${c.path}: status read in the kernel`);
        const responseBytes = data.filter((d) => d.seq === r.seq && d.direction === PC_DIR_RESPONSE);
        if (c.kernel) {
          assert.equal(responseBytes.length, 0, `${c.path}: no response capture once the status is known`);
          assert.equal(r.respCaptured, 0, `${c.path}: resp_captured`);
        } else {
          assert.ok(responseBytes.length > 0, `${c.path}: the response head is captured for userspace`);
          assert.equal(responseBytes.reduce((a, d) => a + d.bytes.length, 0), r.respCaptured, `${c.path}: resp_captured`);
        }
        const call = calls.filter((d) => d.parentSeq === CASES.length + i + 1);
        assert.equal(call.length, 1, `${c.path}: one outbound call under its request`);
        const d = call[0]!;
        assert.equal(d.status, c.kernel, `${c.path}: the call's status read in the kernel`);
        const callResponse = records.filter((x): x is KernelData => x.kind === 'data' && x.connId === d.connId && x.seq === d.seq && x.direction === PC_DIR_RESPONSE);
        if (c.kernel) assert.equal(callResponse.length, 0, `${c.path}: no capture of the call's response`);
        else assert.ok(callResponse.length > 0, `${c.path}: the call's response head is captured`);
        assert.equal(callResponse.reduce((a, x) => a + x.bytes.length, 0), d.respCaptured, `${c.path}: the call's resp_captured`);
      }
    } finally {
      await loader.stop();
    }
  });

  describe('through the agent', () => {
    let agent: RunningAgent;

    before(async () => {
      agent = await startAgent(['--ports', String(server.port)]);
    });

    after(async () => {
      await agent?.stop();
    });

    it('http_status is the status line in every case, and null where there is none, for requests and their calls', async () => {
      await sendAll(server.port, upstream.port, 'agent');
      const ids = new Set(CASES.flatMap((_, i) => [`agent-${i}`, `agent-via-${i}`]));
      const mine = await waitFor('the records', async () => {
        const body = (await agent.get<{ requests: RequestRecord[] }>('/api/requests?limit=1000&since=60')).body;
        const got = body.requests.filter((r) => r.correlation_id !== null && ids.has(r.correlation_id));
        return got.length >= ids.size && got.every((r) => !r.http_path?.startsWith('/via/') || r.dependencies.length > 0) ? got : undefined;
      });
      for (const [i, c] of CASES.entries()) {
        const r = mine.filter((x) => x.correlation_id === `agent-${i}`);
        assert.equal(r.length, 1, `${c.path}: one record`);
        assert.equal(r[0]!.http_status, c.status, `${c.path}: http_status`);
        assert.equal(r[0]!.http_path, c.path, `${c.path}: http_path`);
        const via = mine.filter((x) => x.correlation_id === `agent-via-${i}`);
        assert.equal(via.length, 1, `${c.path} through the upstream: one record`);
        assert.equal(via[0]!.dependencies.length, 1, `${c.path}: one dependency`);
        assert.equal(via[0]!.dependencies[0]!.http_status, c.status, `${c.path}: the dependency's http_status`);
        assert.equal(via[0]!.dependencies[0]!.http_path, c.path, `${c.path}: the dependency's http_path`);
      }
    });
  });
});
