/**
 * Servers and connections that existed before the agent started (or before it restarted):
 * their keep-alive connections are recorded from their next request, and the filters hold on
 * that path too (issue 13, finding 5): with --ports A, a server started earlier that also
 * listens on B yields no record for B, and its inbound connections on B are never taken for
 * outbound calls (dependencies) of A's requests.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startAgent, type RunningAgent } from '../harness/agent.ts';
import { waitFor } from '../harness/ports.ts';
import { spawnTracked, type Spawned } from '../harness/processes.ts';
import { getRequest, RawHttpClient } from '../harness/raw-client.ts';
import type { RequestRecord } from '../../src/types.ts';
import { createInterface } from 'node:readline';

/** One process, two HTTP listeners; prints "LISTENING <a> <b>". */
const TWO_PORTS = `
const http = require('node:http');
const handler = (req, res) => res.end('ok ' + req.url + '\\n');
// Keep idle connections open however long an agent takes to restart (Node closes them after 5 s).
const server = () => Object.assign(http.createServer(handler), { keepAliveTimeout: 0 });
const a = server().listen(0, '127.0.0.1', () => {
  const b = server().listen(0, '127.0.0.1', () => {
    console.log('LISTENING ' + a.address().port + ' ' + b.address().port);
  });
});`;

async function startTwoPortServer(): Promise<Spawned & { a: number; b: number }> {
  const s = spawnTracked(process.execPath, ['-e', TWO_PORTS]);
  const [a, b] = await new Promise<[number, number]>((resolve, reject) => {
    createInterface({ input: s.child.stdout! }).on('line', (line) => {
      const m = /^LISTENING (\d+) (\d+)/.exec(line);
      if (m) resolve([Number(m[1]), Number(m[2])]);
    });
    void s.exited.then((code) => reject(new Error(`server exited ${code}: ${s.output()}`)));
  });
  return { ...s, a, b };
}

async function records(agent: RunningAgent, port: number): Promise<RequestRecord[]> {
  const { body } = await agent.get<{ requests: RequestRecord[] }>('/api/requests?limit=10000&since=60');
  return body.requests.filter((r) => r.local_port === port);
}

describe('servers and connections from before the agent started', () => {
  let server: Spawned & { a: number; b: number };
  let onA: RawHttpClient;
  let onB: RawHttpClient;
  let agent: RunningAgent | undefined;

  before(async () => {
    server = await startTwoPortServer();
    // Keep-alive connections opened, and used once, before any agent runs.
    onA = new RawHttpClient(server.a);
    onB = new RawHttpClient(server.b);
    await onA.request(getRequest('/before-a'));
    await onB.request(getRequest('/before-b'));
  });

  after(async () => {
    await onA?.close();
    await onB?.close();
    await agent?.stop();
    await server?.stop();
  });

  it('--ports A: the old keep-alive connection on A is recorded from its next request; B yields nothing, and no dependency', async () => {
    agent = await startAgent(['--ports', String(server.a)]);
    const sent: string[] = [];
    for (let i = 0; i < 20; i++) {
      const id = `adopt-a-${i}`;
      const res = await onA.request(getRequest(`/a/${i}`, { 'X-Correlation-ID': id }));
      assert.equal(res.status, 200);
      sent.push(id);
      await onB.request(getRequest(`/b/${i}`, { 'X-Correlation-ID': `adopt-b-${i}` }));
    }
    // The last request on each connection is reported by the idle flush.
    const onPortA = await waitFor('every request on A', async () => {
      const r = await records(agent!, server.a);
      return r.filter((x) => x.correlation_id?.startsWith('adopt-a-')).length >= sent.length ? r : undefined;
    });
    const mine = onPortA.filter((x) => x.correlation_id?.startsWith('adopt-a-'));
    assert.deepEqual(mine.map((r) => r.correlation_id).sort(), [...sent].sort(), 'one record per request on A');
    for (const r of mine) assert.deepEqual(r.dependencies, [], `${r.correlation_id}: B's inbound connection is not an outbound call`);
    assert.deepEqual(await records(agent, server.b), [], 'nothing recorded on B (outside --ports)');
  });

  it('after the agent restarts, the same keep-alive connection is recorded again', async () => {
    await agent!.stop();
    agent = await startAgent(['--ports', String(server.a)]);
    for (let i = 0; i < 5; i++) await onA.request(getRequest(`/again/${i}`, { 'X-Correlation-ID': `again-${i}` }));
    const again = await waitFor('requests after the restart', async () => {
      const r = (await records(agent!, server.a)).filter((x) => x.correlation_id?.startsWith('again-'));
      return r.length >= 5 ? r : undefined;
    });
    assert.equal(again.length, 5);
  });
});
