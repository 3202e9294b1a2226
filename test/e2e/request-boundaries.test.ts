/**
 * One record per request, whatever the bytes look like on the wire: pipelining, chunked
 * bodies both ways, 1 MB bodies, headers split across many reads, a client sending one byte
 * at a time, Connection: close, and a correlation header deep in a 4 KB header block. Each
 * case checks the record count and the exact bytes against the raw-socket client.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startAgent, type RunningAgent } from '../harness/agent.ts';
import { waitFor } from '../harness/ports.ts';
import { chunkedPostRequest, getRequest, postRequest, RawHttpClient, type RawResponse } from '../harness/raw-client.ts';
import { startNodeServer, startPythonServer, type RunningServer } from '../harness/runtimes.ts';
import type { RequestRecord } from '../../src/types.ts';

type Requests = { count: number; requests: RequestRecord[] };

describe('request boundaries on the wire', () => {
  let agent: RunningAgent;
  let node: RunningServer;
  let python: RunningServer;
  let n = 0;
  const uid = (tag: string) => `${tag}-${++n}`;

  before(async () => {
    node = await startNodeServer({ OTEL_SERVICE_NAME: 'edge-node' });
    python = await startPythonServer({ OTEL_SERVICE_NAME: 'edge-python' });
    agent = await startAgent(['--ports', `${node.port},${python.port}`]);
  });

  after(async () => {
    await agent?.stop();
    await node?.stop();
    await python?.stop();
  });

  /** Waits for the records of these correlation ids and checks count and bytes. */
  async function expectExact(expected: { id: string; res: RawResponse }[], server: RunningServer): Promise<RequestRecord[]> {
    const ids = new Set(expected.map((e) => e.id));
    const records = await waitFor(`records for ${[...ids].join(',')}`, async () => {
      const r = await agent.get<Requests>(`/api/requests?limit=10000&since=60`);
      const mine = r.body.requests.filter((x) => x.correlation_id !== null && ids.has(x.correlation_id));
      return mine.length >= ids.size ? mine : undefined;
    });
    await new Promise((r) => setTimeout(r, 300)); // a split would show up as an extra record
    const again = (await agent.get<Requests>(`/api/requests?limit=10000&since=60`)).body.requests.filter(
      (x) => x.correlation_id !== null && ids.has(x.correlation_id),
    );
    assert.equal(again.length, expected.length, 'exactly one record per request');
    for (const e of expected) {
      const r = again.find((x) => x.correlation_id === e.id)!;
      assert.equal(r.local_port, server.port);
      assert.equal(r.http_status, e.res.status, `${e.id} status`);
      assert.equal(r.bytes_received, e.res.bytesSent, `${e.id} bytes_received`);
      assert.equal(r.bytes_sent, e.res.bytesReceived, `${e.id} bytes_sent`);
    }
    return records;
  }

  for (const which of ['node', 'python'] as const) {
    const server = () => (which === 'node' ? node : python);

    it(`${which}: pipelined requests (three in one write) give three exact records`, async () => {
      const c = new RawHttpClient(server().port);
      const ids = [uid('pipe'), uid('pipe'), uid('pipe')];
      const res = await c.pipeline(ids.map((id, i) => getRequest(`/size?bytes=${100 * (i + 1)}`, { 'X-Correlation-ID': id })));
      await c.close();
      await expectExact(ids.map((id, i) => ({ id, res: res[i]! })), server());
    });

    it(`${which}: 1 MB bodies each way`, async () => {
      const c = new RawHttpClient(server().port);
      const up = uid('big-up');
      const down = uid('big-down');
      const r1 = await c.request(postRequest('/echo', Buffer.alloc(1 << 20, 'u'), { 'X-Correlation-ID': up }));
      const r2 = await c.request(getRequest(`/size?bytes=${1 << 20}`, { 'X-Correlation-ID': down }));
      await c.close();
      assert.equal(r1.body.length, 1 << 20);
      await expectExact([{ id: up, res: r1 }, { id: down, res: r2 }], server());
    });

    it(`${which}: headers split across many reads, and a client sending one byte at a time`, async () => {
      const c = new RawHttpClient(server().port);
      const split = uid('split');
      const raw = getRequest('/hello/split', { 'X-Other': 'a'.repeat(300), 'X-Correlation-ID': split });
      const cut = raw.indexOf('X-Correlation-ID') + 5; // inside the header name
      const r1 = await c.requestInPieces([raw.slice(0, 20), raw.slice(20, cut), raw.slice(cut, cut + 10), raw.slice(cut + 10)], 30);
      const slow = uid('slow');
      const slowRaw = getRequest('/hello/slow', { 'X-Correlation-ID': slow });
      const r2 = await c.requestInPieces([...slowRaw], 2);
      await c.close();
      await expectExact([{ id: split, res: r1 }, { id: slow, res: r2 }], server());
    });

    it(`${which}: Connection: close, and a correlation header 3 KB into the head`, async () => {
      const deep = uid('deep');
      const c1 = new RawHttpClient(server().port);
      const r1 = await c1.request(getRequest('/hello/deep', { 'X-Filler': 'f'.repeat(3000), 'x-correlation-id': deep }));
      await c1.close();
      const closing = uid('close');
      const c2 = new RawHttpClient(server().port);
      const r2 = await c2.request(getRequest('/hello/close', { 'X-Correlation-ID': closing, Connection: 'close' }));
      await c2.close();
      await expectExact([{ id: deep, res: r1 }, { id: closing, res: r2 }], server());
    });
  }

  it('node: chunked request body and chunked response', async () => {
    const c = new RawHttpClient(node.port);
    const up = uid('chunk-up');
    const down = uid('chunk-down');
    const r1 = await c.request(chunkedPostRequest('/echo', Buffer.alloc(50_000, 'c'), 7, { 'X-Correlation-ID': up }));
    const r2 = await c.request(getRequest('/chunked?parts=5&size=3000', { 'X-Correlation-ID': down }));
    await c.close();
    assert.equal(r1.body.length, 50_000);
    assert.equal(r2.body.length, 15_000);
    await expectExact([{ id: up, res: r1 }, { id: down, res: r2 }], node);
  });

  it('node: pipelined POSTs with bodies split exactly between records', async () => {
    const c = new RawHttpClient(node.port);
    const ids = [uid('pipe-post'), uid('pipe-post')];
    const raws = ids.map((id, i) => postRequest('/echo', Buffer.alloc(500 + i * 700, 'p'), { 'X-Correlation-ID': id }).toString('latin1'));
    const res = await c.pipeline(raws);
    await c.close();
    await expectExact(ids.map((id, i) => ({ id, res: res[i]! })), node);
  });
});
