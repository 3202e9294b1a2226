/**
 * nginx in its two everyday roles: serving static files with sendfile, and proxy_pass to an
 * upstream over a pooled keep-alive connection, which becomes a dependency of the nginx
 * request and links to the upstream's own SERVER record.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startAgent, type RunningAgent } from '../harness/agent.ts';
import { waitFor } from '../harness/ports.ts';
import { getRequest, RawHttpClient, type RawResponse } from '../harness/raw-client.ts';
import { startNginx, startNodeServer, type RunningNginx, type RunningServer } from '../harness/runtimes.ts';
import type { RequestRecord } from '../../src/types.ts';

type Requests = { count: number; requests: RequestRecord[] };

describe('nginx: static files with sendfile, proxy_pass as a dependency', () => {
  let agent: RunningAgent;
  let upstream: RunningServer;
  let nginx: RunningNginx;
  const big = Buffer.alloc(1 << 20, 'n');

  before(async () => {
    upstream = await startNodeServer({ OTEL_SERVICE_NAME: 'nginx-upstream' });
    nginx = await startNginx({ upstreamPort: upstream.port, staticFiles: { 'big.bin': big, 'small.txt': 'small file\n' } });
    agent = await startAgent(['--ports', `${nginx.staticPort},${nginx.proxyPort},${upstream.port}`]);
  });

  after(async () => {
    await agent?.stop();
    await nginx?.stop();
    await upstream?.stop();
  });

  async function record(id: string): Promise<RequestRecord> {
    return waitFor(`record ${id}`, async () => {
      const r = await agent.get<Requests>(`/api/requests?correlation_id=${id}`);
      return r.body.requests[0];
    });
  }

  it('static files over one keep-alive connection: one exact record each', async () => {
    const c = new RawHttpClient(nginx.staticPort);
    const sent: [string, RawResponse][] = [];
    for (let i = 0; i < 6; i++) {
      const id = `nginx-static-${i}`;
      const file = i % 2 ? 'small.txt' : 'big.bin';
      sent.push([id, await c.request(getRequest(`/${file}`, { 'X-Correlation-ID': id }))]);
    }
    await c.close();
    for (const [id, res] of sent) {
      const r = await record(id);
      assert.equal(r.http_status, 200);
      assert.equal(r.bytes_received, res.bytesSent);
      assert.equal(r.bytes_sent, res.bytesReceived, `${id}: sendfile bytes counted`);
      assert.equal(r.process_name, 'nginx');
      assert.ok(nginx.pids.includes(r.pid), 'served by an nginx process');
    }
    assert.equal(sent[0]![1].body.length, big.length);
    const all = await agent.get<Requests>('/api/requests?process=nginx&limit=1000');
    assert.equal(all.body.requests.filter((r) => r.correlation_id?.startsWith('nginx-static-')).length, 6, 'no extra records');
  });

  it('proxy_pass: the upstream call is a dependency, linked to the upstream record', async () => {
    const c = new RawHttpClient(nginx.proxyPort);
    const ids = ['nginx-proxy-1', 'nginx-proxy-2'];
    for (const id of ids) await c.request(getRequest(`/hello/${id}`, { 'X-Correlation-ID': id }));
    await c.close();
    for (const id of ids) {
      const front = await waitFor(`nginx record ${id} with its dependency`, async () => {
        const r = await agent.get<Requests>(`/api/requests?correlation_id=${id}&process=nginx`);
        const rec = r.body.requests[0];
        return rec && rec.dependencies.length === 1 ? rec : undefined;
      });
      const dep = front.dependencies[0]!;
      assert.equal(dep.peer_port, upstream.port);
      assert.equal(dep.http_method, 'GET');
      assert.equal(dep.http_path, `/hello/${id}`);
      assert.equal(dep.http_status, 200);
      // nginx forwards X-Correlation-ID: the upstream's record has it too.
      const back = await waitFor(`upstream record ${id}`, async () => {
        const r = await agent.get<Requests>(`/api/requests?correlation_id=${id}&process=nginx-upstream`);
        return r.body.requests[0];
      });
      assert.equal(dep.bytes_sent, back.bytes_received, 'nginx sent what the upstream read');
      assert.equal(dep.bytes_received, back.bytes_sent, 'nginx read what the upstream sent');
      assert.equal(back.trace_id, front.trace_id, 'one trace');
      assert.equal(back.parent_span_id, dep.span_id, 'upstream SERVER span under the nginx CLIENT span');
    }
  });
});
