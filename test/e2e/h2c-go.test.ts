/**
 * HTTP/2 cleartext on a Go server (golang.org/x/net/http2/h2c, test/servers/go-h2c) on the
 * real kernel, both ways in:
 *   - `Upgrade: h2c` (curl --http2): the HTTP/1.1 request answered 101 becomes stream 1, and
 *     the requests after it on the same connection are HTTP/2 streams 3, 5, ...;
 *   - prior knowledge (a Node http2 client), many concurrent streams on one connection.
 * Truth: what the clients saw, and the bytes on the wire (test/harness/h2-wire.ts), split by
 * frame headers, each stream's until it ended; an upgraded stream 1 is its HTTP/1.1 request,
 * and the 101 head plus its frames.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http2 from 'node:http2';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { startAgent, type RunningAgent } from '../harness/agent.ts';
import { startRecordingRelay, streamBytesToEnd } from '../harness/h2-wire.ts';
import { h2Request } from '../harness/h2-requests.ts';
import { waitFor } from '../harness/ports.ts';
import { startGoH2cServer, type RunningServer } from '../harness/runtimes.ts';
import type { RequestRecord } from '../../src/types.ts';

const run = promisify(execFile);
const REQUESTS = Number(process.env.PERFCATCH_H2_REQUESTS ?? 400);
const CONCURRENCY = 50;

async function recordsWithPath(agent: RunningAgent, prefix: RegExp, want: number): Promise<RequestRecord[]> {
  return waitFor(`${want} records matching ${prefix}`, async () => {
    const r = await agent.get<{ requests?: RequestRecord[] }>('/api/requests?limit=10000&protocol=h2');
    const got = (r.body.requests ?? []).filter((x) => x.http_path !== null && prefix.test(x.http_path));
    return got.length >= want ? got : undefined;
  }, 120_000, 500);
}

/** Where an HTTP/1.1 head ends (its blank line included). */
function headLength(chunks: Buffer[]): number {
  const at = Buffer.concat(chunks).indexOf('\r\n\r\n');
  assert.ok(at > 0, 'an HTTP/1.1 head');
  return at + 4;
}

describe('h2c on a Go server (x/net/http2/h2c): Upgrade and prior knowledge', () => {
  let server: RunningServer;
  let agent: RunningAgent;

  before(async () => {
    server = await startGoH2cServer();
    agent = await startAgent(['--ports', String(server.port), '--keep-query']);
  });
  after(async () => {
    await agent?.stop();
    await server?.stop();
  });

  it('curl --http2 (Upgrade: h2c): the upgraded request is stream 1, the next ones streams 3, 5, 7, 9: exact records and bytes', async () => {
    const relay = await startRecordingRelay(server.port);
    const paths = ['/ok/u1?n=100', '/missing/u2', '/fail/u3', '/ok/u4?n=7000', '/ok/u5?n=1'];
    const args = ['-s', '--http2', '-w', '%{http_code} %{http_version}\\n'];
    for (const p of paths) args.push('-o', '/dev/null', `http://127.0.0.1:${relay.port}${p}`);
    const { stdout } = await run('curl', args);
    assert.deepEqual(stdout.trim().split('\n'), ['200 2', '404 2', '500 2', '200 2', '200 2'], 'curl upgraded and kept one connection');
    await new Promise((r) => setTimeout(r, 300));
    relay.close();
    assert.equal(relay.wires.length, 1, 'one connection');
    const wire = relay.wires[0]!;
    const upHead = headLength(wire.up);
    const downHead = headLength(wire.down);
    assert.match(Buffer.concat(wire.down).subarray(0, downHead).toString('latin1'), /^HTTP\/1\.1 101 /);
    const { up, down } = streamBytesToEnd(wire, { up: upHead, down: downHead });

    const got = await recordsWithPath(agent, /^\/(ok|missing|fail)\/u\d/, paths.length);
    assert.equal(got.length, paths.length, 'one record per request, the upgraded one included');
    const byPath = new Map(got.map((r) => [r.http_path, r]));
    paths.forEach((p, i) => {
      const r = byPath.get(p);
      assert.ok(r, `a record for ${p}`);
      const streamId = 2 * i + 1;
      assert.equal(r.protocol, 'h2');
      assert.equal(r.http_method, 'GET');
      assert.equal(r.http_status, [200, 404, 500, 200, 200][i]);
      if (streamId === 1) {
        // The HTTP/1.1 request itself, and the 101 head with stream 1's frames.
        assert.equal(r.bytes_received, upHead, 'stream 1: the upgrade request');
        assert.equal(r.bytes_sent, downHead + down.get(1)!, 'stream 1: 101 head and its frames');
      } else {
        assert.equal(r.bytes_received, up.get(streamId), `${p} request bytes`);
        assert.equal(r.bytes_sent, down.get(streamId), `${p} response bytes`);
      }
    });
    // The API sheds a query while others run (a 503 asking to retry).
    const http1 = await waitFor('the HTTP/1.1 records', async () => {
      const res = await agent.get<{ requests: RequestRecord[] }>(`/api/requests?limit=1000&protocol=${encodeURIComponent('http/1.1')}`);
      return res.status === 200 ? res.body.requests : undefined;
    }, 30_000, 500);
    assert.deepEqual(http1.filter((r) => r.http_path?.startsWith('/ok/u1')), [], 'the upgraded request is not also an HTTP/1.1 record');
    console.log(`# h2c upgrade: ${got.map((r) => `${r.http_path} ${r.http_status} ${r.bytes_received}/${r.bytes_sent}`).join(', ')}`);
  });

  it(`prior knowledge (Node http2 client): ${REQUESTS} requests, ${CONCURRENCY} concurrent streams: exact records, statuses and per-stream bytes`, async () => {
    const relay = await startRecordingRelay(server.port);
    const session = http2.connect(`http://127.0.0.1:${relay.port}`);
    const expected = new Map<string, { method: string; status: number; streamId: number }>();
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < REQUESTS) {
          const i = next++;
          const kind = i % 4;
          const method = kind === 0 ? 'POST' : 'GET';
          const path = kind <= 1 ? `/ok/p${i}?n=${(i * 37) % 3000}` : kind === 2 ? `/missing/p${i}` : `/fail/p${i}`;
          const { status, streamId } = await h2Request(session, method, path, {}, i % 5000);
          expected.set(path, { method, status, streamId });
        }
      }),
    );
    session.close();
    await new Promise((r) => setTimeout(r, 300));
    relay.close();
    assert.equal(relay.wires.length, 1);
    const { up, down } = streamBytesToEnd(relay.wires[0]!);
    const got = await recordsWithPath(agent, /^\/(ok|missing|fail)\/p\d/, REQUESTS);
    assert.equal(got.length, REQUESTS, 'one record per stream');
    const seen = new Set<string>();
    for (const r of got) {
      const e = expected.get(r.http_path!);
      assert.ok(e, `unexpected record ${r.http_path}`);
      assert.ok(!seen.has(r.http_path!), `two records for ${r.http_path}`);
      seen.add(r.http_path!);
      assert.equal(r.http_method, e.method);
      assert.equal(r.http_status, e.status);
      assert.equal(r.bytes_received, up.get(e.streamId), `${r.http_path} request bytes`);
      assert.equal(r.bytes_sent, down.get(e.streamId), `${r.http_path} response bytes`);
    }
    const health = (await agent.get<{ counters: { h2?: Record<string, number> } }>('/health')).body;
    console.log(`# h2c prior knowledge: ${got.length} records; h2 counters ${JSON.stringify(health.counters.h2 ?? {})}`);
  });
});
