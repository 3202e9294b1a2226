/**
 * The agent runs with only the capabilities the DaemonSet grants (CAP_BPF, CAP_PERFMON,
 * CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH), not as a fully privileged root, and still captures.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readFileSync } from 'node:fs';
import { ROOT, startAgent, type RunningAgent } from '../harness/agent.ts';
import { waitFor } from '../harness/ports.ts';
import { startServer } from '../harness/processes.ts';
import { getRequest, RawHttpClient } from '../harness/raw-client.ts';
import type { RequestRecord } from '../../src/types.ts';

const CAPS = ['bpf', 'perfmon', 'sys_ptrace', 'dac_read_search'];

describe('least privilege', () => {
  let agent: RunningAgent;
  let server: Awaited<ReturnType<typeof startServer>>;

  before(async () => {
    server = await startServer(process.execPath, [`${ROOT}test/servers/node-http-server.mjs`]);
    const wrap = ['setpriv', `--bounding-set=-all,${CAPS.map((c) => `+${c}`).join(',')}`, '--inh-caps=-all'];
    agent = await startAgent(['--ports', String(server.port)], {}, wrap);
  });

  after(async () => {
    await agent?.stop();
    await server?.stop();
  });

  it('runs with CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH only', async () => {
    const status = readFileSync(`/proc/${agent.pid}/status`, 'utf8');
    const capEff = BigInt(`0x${/^CapEff:\s+([0-9a-f]+)/m.exec(status)![1]}`);
    // Bit numbers from linux/capability.h.
    const allowed = (1n << 39n) | (1n << 38n) | (1n << 19n) | (1n << 2n);
    assert.equal(capEff & ~allowed, 0n, `no capability beyond the four (CapEff ${capEff.toString(16)})`);
    assert.notEqual(capEff & (1n << 21n), 1n << 21n, 'no CAP_SYS_ADMIN');
    // Pinning the maps and links to bpffs (a loader restart loses no capture) needs no more.
    const pins = (await agent.get<{ pins: { state: string; reason: string | null } }>('/health')).body.pins;
    assert.equal(pins.state, 'fresh', `pinned with these capabilities: ${JSON.stringify(pins)}`);

    const client = new RawHttpClient(server.port);
    const res = await client.request(getRequest('/least-priv', { 'X-Correlation-ID': 'least-priv-1' }));
    // The connection stays open and idle: only the idle flush can report this request, and
    // it must work without CAP_SYS_ADMIN too.
    const rec = await waitFor(
      'the idle request reported by the idle flush',
      async () => {
        const r = await agent.get<{ requests: RequestRecord[] }>('/api/requests?correlation_id=least-priv-1');
        return r.body.requests[0];
      },
      5_000,
    );
    await client.close();
    assert.equal(rec.http_status, 200);
    assert.equal(rec.bytes_sent, res.bytesReceived);
    assert.ok(rec.cpu_time_ms > 0);
  });
});
