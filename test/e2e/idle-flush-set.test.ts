/**
 * The idle flush visits only the connections whose response started since their last flush
 * (the kernel's flush_set, bpf/flush_set.bpf.h), sized at an eighth of the connection table.
 * With more such connections than that set holds, the connections that found it full must
 * still be reported while they stay open: the next flush walks every connection. Both
 * variants: the kernel's own walk, and the loader's listing (kernels before 5.13).
 *
 * A table of 256 connections gives a set of 32; 96 keep-alive connections each answer one
 * request and stay open, twice over (the second round finds the set holding the first
 * round's entries, or none). Without the fallback, 64 of each round would wait for the
 * connection's next request or its close.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startAgent, type RunningAgent } from '../harness/agent.ts';
import { waitFor } from '../harness/ports.ts';
import { getRequest, RawHttpClient, type RawResponse } from '../harness/raw-client.ts';
import { startNodeServer, type RunningServer } from '../harness/runtimes.ts';
import type { RequestRecord } from '../../src/types.ts';

const TABLE = 256;
const CONNECTIONS = 96;

async function recordsOf(agent: RunningAgent, prefix: string): Promise<RequestRecord[]> {
  const regex = encodeURIComponent(`^${prefix}`);
  return (await agent.get<{ requests: RequestRecord[] }>(`/api/requests?limit=10000&since=120&correlation_id_regex=${regex}`)).body.requests;
}

for (const variant of ['kernel walk (default)', 'loader listing (forced)']) {
  describe(`idle flush with ${CONNECTIONS} quiet connections and room for ${TABLE / 8} in its set: ${variant}`, () => {
    let agent: RunningAgent;
    let server: RunningServer;
    const clients: RawHttpClient[] = [];
    const tag = variant.startsWith('kernel') ? 'fsk' : 'fsl';

    before(async () => {
      server = await startNodeServer();
      const args = ['--ports', String(server.port), '--conn-table-size', String(TABLE)];
      if (!variant.startsWith('kernel')) args.push('--kernel-variants', 'idle_flush=loader_scan');
      agent = await startAgent(args);
      for (let i = 0; i < CONNECTIONS; i++) clients.push(new RawHttpClient(server.port));
    });

    after(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await agent?.stop();
      await server?.stop();
    });

    for (const round of [1, 2]) {
      it(`round ${round}: every request is reported while its connection stays open, exact bytes`, async () => {
        const prefix = `${tag}${round}-`;
        const responses = new Map<string, RawResponse>();
        await Promise.all(
          clients.map(async (c, i) => {
            const id = `${prefix}${i}`;
            responses.set(id, await c.request(getRequest('/hello', { 'X-Correlation-ID': id })));
          }),
        );
        const records = await waitFor(
          `${CONNECTIONS} idle-flushed records`,
          async () => {
            const r = await recordsOf(agent, prefix);
            return r.length >= CONNECTIONS ? r : undefined;
          },
          10_000,
        );
        assert.equal(records.length, CONNECTIONS, 'one record per request');
        for (const r of records) {
          const res = responses.get(r.correlation_id!)!;
          assert.equal(r.bytes_sent, res.bytesReceived, `bytes_sent of ${r.correlation_id}`);
          assert.equal(r.http_status, res.status);
        }
      });
    }
  });
}
