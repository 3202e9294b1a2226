/**
 * The ground-truth servers themselves (no agent): every runtime honours the same contract,
 * so later tests can compare the agent's numbers with the servers' own.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { getRequest, RawHttpClient, type RawResponse } from '../harness/raw-client.ts';
import {
  startGoServer,
  startJavaServer,
  startNginx,
  startNodeServer,
  startPythonServer,
  type RunningNginx,
  type RunningServer,
} from '../harness/runtimes.ts';

function postRequest(path: string, body: Buffer): Buffer {
  const head = [`POST ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Content-Type: application/octet-stream', `Content-Length: ${body.length}`].join('\r\n');
  return Buffer.concat([Buffer.from(head + '\r\n\r\n', 'latin1'), body]);
}

function assertContract(r: RawResponse): void {
  assert.equal(r.headers.get('content-type'), 'text/plain');
  assert.equal(Number(r.headers.get('content-length')), r.body.length);
  const cpu = Number(r.headers.get('x-thread-cpu-ns'));
  assert.ok(Number.isFinite(cpu) && cpu >= 0, `X-Thread-Cpu-Ns: ${r.headers.get('x-thread-cpu-ns')}`);
  const rss = Number(r.headers.get('x-vm-rss-bytes'));
  assert.ok(rss > 1024 * 1024 && rss < 64 * 1024 ** 3, `X-Vm-Rss-Bytes: ${r.headers.get('x-vm-rss-bytes')}`);
  assert.equal(rss % 1024, 0, 'VmRSS kB * 1024');
}

const runtimes: Array<[string, () => Promise<RunningServer>]> = [
  ['node', startNodeServer],
  ['python', startPythonServer],
  ['go', startGoServer],
  ['java', startJavaServer],
];

for (const [name, start] of runtimes) {
  describe(`${name} ground-truth server`, () => {
    let server: RunningServer;
    let client: RawHttpClient;

    before(async () => {
      server = await start();
      client = new RawHttpClient(server.port);
    });
    after(async () => {
      await client?.close();
      await server?.stop();
    });

    it('GET /hello', async () => {
      const r = await client.request(getRequest('/hello'));
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), 'hello /hello\n');
      assertContract(r);
    });

    it('GET /compute?ms=3 reports ~3 ms of thread CPU', async () => {
      const r = await client.request(getRequest('/compute?ms=3'));
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), 'computed\n');
      assertContract(r);
      const cpu = Number(r.headers.get('x-thread-cpu-ns'));
      assert.ok(cpu >= 2.5e6 && cpu <= 30e6, `X-Thread-Cpu-Ns ${cpu}`);
    });

    it('GET /size?bytes=100000', async () => {
      const r = await client.request(getRequest('/size?bytes=100000'));
      assert.equal(r.status, 200);
      assert.equal(r.body.length, 100_000);
      assert.ok(r.body.every((b) => b === 0x78));
      assertContract(r);
    });

    it('POST /echo with a 1000-byte body', async () => {
      const body = Buffer.alloc(1000);
      for (let i = 0; i < body.length; i++) body[i] = 0x41 + (i % 26);
      const r = await client.request(postRequest('/echo', body));
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, body);
      assertContract(r);
    });

    it('?status=404 sets the status', async () => {
      const r = await client.request(getRequest('/missing?status=404'));
      assert.equal(r.status, 404);
      assert.equal(r.body.toString(), 'hello /missing\n');
      assertContract(r);
    });

    it('keeps one connection usable for 3 more requests', async () => {
      const c = new RawHttpClient(server.port);
      try {
        for (const path of ['/a', '/b', '/c']) {
          const r = await c.request(getRequest(path));
          assert.equal(r.status, 200);
          assert.equal(r.body.toString(), `hello ${path}\n`);
          assertContract(r);
        }
      } finally {
        await c.close();
      }
    });
  });
}

describe('nginx ground-truth server', () => {
  let upstream: RunningServer;
  let nginx: RunningNginx;
  const big = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 131 + 7) & 0xff;

  before(async () => {
    upstream = await startNodeServer();
    nginx = await startNginx({ upstreamPort: upstream.port, staticFiles: { 'big.bin': big, 'small.txt': 'small\n' } });
  });
  after(async () => {
    await nginx?.stop();
    await upstream?.stop();
  });

  it('runs a master and a worker', () => {
    assert.ok(nginx.pids.length >= 2, `pids ${nginx.pids.join(',')}`);
  });

  it('serves a 1 MB static file exactly, keep-alive', async () => {
    const c = new RawHttpClient(nginx.staticPort);
    try {
      for (let i = 0; i < 3; i++) {
        const r = await c.request(getRequest('/big.bin'));
        assert.equal(r.status, 200);
        assert.equal(r.body.length, big.length);
        assert.ok(r.body.equals(big), 'static body is byte-identical');
      }
      const s = await c.request(getRequest('/small.txt'));
      assert.equal(s.body.toString(), 'small\n');
      assert.equal((await c.request(getRequest('/nope'))).status, 404);
    } finally {
      await c.close();
    }
  });

  it('proxies to the upstream ground-truth server, keep-alive', async () => {
    const c = new RawHttpClient(nginx.proxyPort);
    try {
      for (const path of ['/hello', '/x', '/y']) {
        const r = await c.request(getRequest(path));
        assert.equal(r.status, 200);
        assert.equal(r.body.toString(), `hello ${path}\n`);
        assert.ok(r.headers.has('x-thread-cpu-ns'), 'upstream headers pass through');
      }
      const e = await c.request(postRequest('/echo', Buffer.from('via nginx')));
      assert.equal(e.body.toString(), 'via nginx');
    } finally {
      await c.close();
    }
  });
});
