/**
 * Bad input gets a clear error and loses nothing: bad flags, missing privileges, an
 * unreachable collector, non-HTTP bytes, huge headers and bad query parameters.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { CLI, ROOT, startAgent, type RunningAgent } from '../harness/agent.ts';
import { assertOneLineError, type CliOutcome } from '../harness/one-line-error.ts';
import { freePort, waitFor } from '../harness/ports.ts';
import { startServer } from '../harness/processes.ts';
import { getRequest, RawHttpClient } from '../harness/raw-client.ts';
import { connect } from 'node:net';
import type { RequestRecord } from '../../src/types.ts';

function runCli(args: string[], wrap: string[] = []): CliOutcome {
  const cmd = wrap.length ? wrap[0]! : process.execPath;
  const argv = wrap.length ? [...wrap.slice(1), process.execPath, CLI, ...args] : [CLI, ...args];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('clear errors for bad flags and missing privileges', () => {
  it('rejects a bad flag value, naming the flag', () => {
    assertOneLineError(runCli(['agent', '--api-port', 'abc']), 2, /^perfcatch: --api-port: .*"abc"/);
  });

  it('rejects an unknown flag and an unknown command', () => {
    assertOneLineError(runCli(['agent', '--bogus']), 2, /^perfcatch: .*--bogus/);
    const r = runCli(['frobnicate']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^perfcatch: unknown command "frobnicate"/);
  });

  it('rejects a bad environment variable, naming it', () => {
    const r = spawnSync(process.execPath, [CLI, 'agent'], { encoding: 'utf8', env: { ...process.env, PERFCATCH_BUFFER_SIZE: '-3' } });
    assertOneLineError({ code: r.status, stdout: r.stdout, stderr: r.stderr }, 2, /PERFCATCH_BUFFER_SIZE/);
  });

  it('without CAP_BPF/CAP_PERFMON exits 3 with one line saying what is missing', () => {
    // Root with an empty capability bounding set: as unprivileged as the kernel can make it.
    const r = runCli(['agent', '--api-port', '0'], ['setpriv', '--bounding-set=-all', '--inh-caps=-all']);
    assertOneLineError(r, 3, /^perfcatch: .*(CAP_BPF|privilege|permission)/i);
  });
});

describe('the agent keeps running on bad input and counts what it drops', () => {
  let agent: RunningAgent;
  let server: Awaited<ReturnType<typeof startServer>>;

  before(async () => {
    server = await startServer(process.execPath, [`${ROOT}test/servers/node-http-server.mjs`]);
    // Nothing listens on this port: every export fails.
    const deadCollector = `http://127.0.0.1:${await freePort()}`;
    agent = await startAgent(['--ports', String(server.port), '--otlp-endpoint', deadCollector]);
  });

  after(async () => {
    await agent?.stop();
    await server?.stop();
  });

  it('an unreachable OTLP endpoint: requests still recorded, failures counted in /metrics', async () => {
    const client = new RawHttpClient(server.port);
    for (let i = 0; i < 20; i++) await client.request(getRequest('/ok', { 'X-Correlation-ID': `dead-otlp-${i}` }));
    await client.close();
    await waitFor('20 records', async () => {
      const r = await agent.get<{ count: number }>('/api/requests?path=/ok&limit=100');
      return r.body.count === 20 ? true : undefined;
    });
    // Failed exports are retried (export-queue.ts), so they show as retries while the spans
    // wait; `failed` counts spans given up after the retry window (5 minutes).
    const retries = await waitFor('span export failures in /metrics', async () => {
      const m = /^perfcatch_span_export_retries_total(?:\{[^}]*\})? (\d+)/m.exec(await agent.metrics());
      return m && Number(m[1]) > 0 ? Number(m[1]) : undefined;
    }, 60_000, 500);
    assert.ok(retries > 0);
    const health = await agent.get<{ status: string; otlp: { retries: number; queued: number } }>('/health');
    assert.equal(health.status, 200, 'capture is up even though export is down');
    assert.ok(health.body.otlp.retries > 0);
    assert.ok(health.body.otlp.queued >= 20, 'the spans wait for the collector');
  });

  it('non-HTTP bytes and huge headers become records without HTTP fields, never a crash', async () => {
    // Binary garbage: Node answers 400 and closes.
    await new Promise<void>((resolve) => {
      const s = connect(server.port, '127.0.0.1', () => s.end(Buffer.from([0x16, 0x03, 0x01, 0xff, 0x00, 0x42, 0x99])));
      s.on('data', () => {});
      s.on('close', () => resolve());
    });
    // A 20 KB header block: larger than the capture, Node answers 431.
    const client = new RawHttpClient(server.port);
    const huge = await client.request(getRequest('/huge', { 'X-Correlation-ID': 'huge-1', 'X-Big': 'b'.repeat(20_000) })).catch(() => null);
    await client.close();
    const records = await waitFor('garbage and huge-header records', async () => {
      const r = await agent.get<{ requests: RequestRecord[] }>('/api/requests?limit=100');
      const garbage = r.body.requests.find((x) => x.http_method === null && x.bytes_received === 7);
      const big = r.body.requests.find((x) => x.correlation_id === 'huge-1');
      return garbage && big ? { garbage, big } : undefined;
    });
    assert.equal(records.garbage.http_status, 400);
    assert.equal(records.big.http_path, '/huge');
    assert.ok(records.big.bytes_received > 20_000, 'bytes are exact beyond the capture size');
    if (huge) assert.equal(records.big.http_status, huge.status);
    const health = await agent.get<{ counters: { agent: { requests_not_http: number } } }>('/health');
    assert.equal(health.status, 200);
    assert.ok(health.body.counters.agent.requests_not_http >= 1);
  });

  it('a bad query parameter gets a 400 naming it', async () => {
    for (const [query, parameter] of [
      ['limit=0', 'limit'],
      ['status=abc', 'status'],
      ['since=-1', 'since'],
      ['min_duration_ms=x', 'min_duration_ms'],
      ['nope=1', 'nope'],
    ]) {
      const r = await agent.get<{ error: string; parameter: string }>(`/api/requests?${query}`);
      assert.equal(r.status, 400, query);
      assert.equal(r.body.parameter, parameter);
      assert.ok(r.body.error.length > 0);
    }
  });
});
