/**
 * Issue 13, finding 7, on the real kernel: bad bytes on a monitored port (random bytes, a TLS
 * ClientHello, the h2c preface, a 64 KB header, control characters, invalid UTF-8, a bare LF
 * in the target), then ordinary requests with UTF-8 paths. The ordinary ones are exact,
 * and nothing stored or printed by the CLI holds a control character.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { CLI, startAgent, type RunningAgent } from '../harness/agent.ts';
import { waitFor } from '../harness/ports.ts';
import { RawHttpClient, sendRaw } from '../harness/raw-client.ts';
import { startPythonServer, type RunningServer } from '../harness/runtimes.ts';
import type { RequestRecord } from '../../src/types.ts';

const ORDINARY = 50;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Sends raw bytes on a new connection, reads until the server closes (or 2 s). */
function seededBytes(n: number, seed: number): Buffer {
  let x = seed;
  return Buffer.from(Array.from({ length: n }, () => ((x = (x * 1103515245 + 12345) >>> 0) >>> 16) & 0xff));
}

const BAD_INPUTS: [string, Buffer][] = [
  ['random', seededBytes(4096, 7)],
  ['TLS ClientHello', Buffer.from('16030100c8010000c403035f1b6c2a', 'hex')],
  ['h2c preface', Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')],
  ['64 KB header', Buffer.from(`GET /big HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(65_536)}\r\n\r\n`, 'latin1')],
  ['control characters', Buffer.from('GET /ctl\x1b[2J\x1b]0;owned\x07 HTTP/1.1\r\nHost: x\r\nX-Correlation-ID: c\x1b[31m\x07\r\nConnection: close\r\n\r\n', 'latin1')],
  ['invalid UTF-8', Buffer.concat([Buffer.from('GET /caf'), Buffer.from([0xe9, 0xc0, 0xaf]), Buffer.from(' HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')])],
  ['bare LF in the target', Buffer.from('GET /lf\nx HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 'latin1')],
];

describe('bad bytes on a monitored port, then ordinary requests', () => {
  let server: RunningServer;
  let agent: RunningAgent;

  before(async () => {
    server = await startPythonServer();
    agent = await startAgent(['--ports', String(server.port)]);
  });
  after(async () => {
    await agent?.stop();
    await server?.stop();
  });

  it(`${BAD_INPUTS.length} kinds of bad input, then ${ORDINARY} UTF-8 requests recorded exactly; no control character stored or printed`, async () => {
    for (const [, bytes] of BAD_INPUTS) await sendRaw(server.port, bytes);
    const client = new RawHttpClient(server.port);
    for (let i = 0; i < ORDINARY; i++) {
      const head = Buffer.from(`GET /café/ü/${i} HTTP/1.1\r\nHost: x\r\nX-Correlation-ID: ok-ü-${i}\r\n\r\n`, 'utf8');
      const r = await client.request(head);
      assert.equal(r.status, 200);
    }
    await client.close();

    const ordinary = await waitFor(`${ORDINARY} ordinary records`, async () => {
      const r = await agent.get<{ requests: RequestRecord[] }>(`/api/requests?limit=1000&correlation_id_regex=${encodeURIComponent('^ok-')}`);
      return r.body.requests.length >= ORDINARY ? r.body.requests : undefined;
    });
    assert.equal(ordinary.length, ORDINARY);
    for (const r of ordinary) {
      const i = r.correlation_id!.slice('ok-ü-'.length);
      assert.equal(r.correlation_id, `ok-ü-${i}`);
      assert.equal(r.http_path, `/café/ü/${i}`);
      assert.equal(r.route, '/café/ü/{id}');
      assert.equal(r.http_status, 200);
    }

    const all = (await agent.get<{ requests: RequestRecord[] }>('/api/requests?limit=10000')).body.requests;
    const strings = (v: unknown): string[] =>
      typeof v === 'string' ? [v] : Array.isArray(v) ? v.flatMap(strings) : v && typeof v === 'object' ? Object.values(v).flatMap(strings) : [];
    const unsafe = all.flatMap((r) => strings(r)).filter((s) => CONTROL.test(s));
    assert.deepEqual(unsafe, [], 'stored fields with control characters');
    const ctl = all.find((r) => r.http_path?.startsWith('/ctl'));
    if (ctl) assert.equal(ctl.http_path, '/ctl%1B[2J%1B]0;owned%07');
    assert.equal(all.some((r) => r.http_path?.startsWith('/lf')), false, 'a target with a bare LF is not HTTP');
    const invalid = all.find((r) => r.http_path?.startsWith('/caf%'));
    if (invalid) assert.equal(invalid.http_path, '/caf%E9%C0%AF');

    // The CLI prints every record without a control character it did not write (no colour off a TTY).
    for (const r of all) {
      const out = spawnSync(process.execPath, [CLI, 'detail', r.request_id, '--api', agent.api], { encoding: 'utf8' });
      assert.equal(out.status, 0, out.stderr);
      const printed = out.stdout.replace(/\n/g, '');
      assert.equal(CONTROL.test(printed), false, `detail ${r.request_id} printed ${JSON.stringify(out.stdout)}`);
    }
    console.log(`# ${all.length} records (${all.length - ORDINARY} from bad input), none with a control character; ${all.length} CLI details clean`);
  });
});
