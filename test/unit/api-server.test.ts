import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startApiServer, type ApiServer } from '../../src/api/server.ts';
import { RequestStore } from '../../src/store/request-store.ts';
import type { RequestRecord } from '../../src/types.ts';
import { QUERY_PARAMETERS } from '../../src/api/query-params.ts';
import { sampleRecord } from './sample-record.ts';

function record(id: string, overrides: Partial<RequestRecord> = {}): RequestRecord {
  return sampleRecord({
    request_id: id,
    trace_id: 'a'.repeat(32),
    span_id: 'b'.repeat(16),
    timestamp: Date.now() / 1000,
    pid: 42,
    remote_ip: '10.0.0.2',
    remote_port: 51000,
    duration_ms: 12.5,
    cpu_time_ms: 3.25,
    memory_rss_bytes: 50_000_000,
    bytes_received: 321,
    bytes_sent: 1234,
    http_path: '/items',
    ...overrides,
  });
}

describe('API server', () => {
  const store = new RequestStore(100);
  let healthy = true;
  let metricsFail = false;
  const logged: string[] = [];
  let server: ApiServer;
  let base: string;

  before(async () => {
    store.add(record('r1', { http_status: 500, correlation_id: 'corr-1' }));
    store.add(record('r2', { http_method: 'POST' }));
    store.add(record('r3'));
    server = await startApiServer({
      host: '127.0.0.1',
      port: 0,
      store,
      health: () => ({ ok: healthy, body: { status: healthy ? 'ok' : 'loader down' } }),
      metrics: async () => {
        if (metricsFail) throw new Error('collection exploded');
        return { contentType: 'text/plain; version=0.0.4; charset=utf-8', body: 'perfcatch_requests_total 3\n' };
      },
      log: { error: (message) => logged.push(message) },
    });
    base = `http://127.0.0.1:${server.port}`;
  });

  after(() => server.close());

  async function getJson(path: string, init?: RequestInit): Promise<{ status: number; body: any; headers: Headers }> {
    const res = await fetch(base + path, init);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    return { status: res.status, body: await res.json(), headers: res.headers };
  }

  it('binds an ephemeral port when asked for port 0', () => {
    assert.ok(server.port > 0);
  });

  it('GET /health answers 200 with the health body, 503 when unhealthy', async () => {
    assert.deepEqual(await getJson('/health').then((r) => [r.status, r.body]), [200, { status: 'ok' }]);
    healthy = false;
    try {
      assert.deepEqual(await getJson('/health').then((r) => [r.status, r.body]), [503, { status: 'loader down' }]);
    } finally {
      healthy = true;
    }
  });

  it('GET /api/requests returns records newest first with a count', async () => {
    const { status, body } = await getJson('/api/requests');
    assert.equal(status, 200);
    assert.equal(body.count, 3);
    assert.deepEqual(body.requests.map((r: RequestRecord) => r.request_id), ['r3', 'r2', 'r1']);
    assert.deepEqual(body.requests[2], store.findById('r1'));
  });

  it('GET /api/requests applies filters', async () => {
    const byStatus = await getJson('/api/requests?status=500');
    assert.deepEqual(byStatus.body.requests.map((r: RequestRecord) => r.request_id), ['r1']);
    const byMethod = await getJson('/api/requests?method=post&limit=5');
    assert.deepEqual(byMethod.body, { count: 1, requests: [store.findById('r2')] });
    const byCorrelation = await getJson('/api/requests?correlation_id=corr-1');
    assert.equal(byCorrelation.body.count, 1);
    const limited = await getJson('/api/requests?limit=2');
    assert.equal(limited.body.count, 2);
  });

  it('answers 400 naming a bad query parameter', async () => {
    for (const [query, parameter] of [['status=abc', 'status'], ['limit=0', 'limit'], ['bogus=1', 'bogus'], ['process=', 'process']]) {
      const { status, body } = await getJson(`/api/requests?${query}`);
      assert.equal(status, 400, query);
      assert.equal(body.parameter, parameter);
      assert.equal(typeof body.error, 'string');
    }
  });

  it('GET /metrics returns Prometheus text', async () => {
    const res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal(await res.text(), 'perfcatch_requests_total 3\n');
  });

  it('answers 500 JSON when a handler fails, and keeps serving', async () => {
    metricsFail = true;
    try {
      const { status, body } = await getJson('/metrics');
      assert.equal(status, 500);
      assert.deepEqual(body, { error: 'internal error' });
      assert.match(logged.at(-1) ?? '', /collection exploded/);
    } finally {
      metricsFail = false;
    }
    assert.equal((await fetch(`${base}/health`)).status, 200);
  });

  it('GET /api/requests/{id} returns one request, 404 for an unknown id, 400 for a broken one', async () => {
    const one = await getJson('/api/requests/r2');
    assert.equal(one.status, 200);
    assert.deepEqual(one.body, store.findById('r2'));
    const missing = await getJson('/api/requests/nope');
    assert.equal(missing.status, 404);
    assert.match(missing.body.error, /nope/);
    const broken = await getJson('/api/requests/%E0%A4%A');
    assert.equal(broken.status, 400);
    assert.equal(broken.body.parameter, 'request_id');
  });

  it('GET /api/services aggregates per service, and only takes since', async () => {
    const { status, body } = await getJson('/api/services?since=60');
    assert.equal(status, 200);
    assert.equal(body.count, 1);
    const svc = body.services[0];
    assert.equal(svc.service_name, 'checkout');
    assert.equal(svc.count, 3);
    assert.equal(svc.errors, 1);
    assert.ok(Math.abs(svc.error_rate - 1 / 3) < 1e-9);
    for (const k of ['p50', 'p95', 'p99']) assert.equal(typeof svc.duration_ms[k], 'number');
    const bad = await getJson('/api/services?limit=3');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.parameter, 'limit');
  });

  it('GET /api/openapi.json describes every route and /api/requests parameter', async () => {
    const { status, body } = await getJson('/api/openapi.json');
    assert.equal(status, 200);
    assert.equal(body.openapi, '3.1.0');
    for (const p of ['/api/requests', '/api/requests/{request_id}', '/api/services', '/health', '/metrics', '/api/openapi.json']) {
      assert.ok(body.paths[p], p);
    }
    const documented = body.paths['/api/requests'].get.parameters.map((p: { name: string }) => p.name).sort();
    assert.deepEqual(documented, [...QUERY_PARAMETERS].sort());
  });

  it('answers 404 JSON for unknown paths', async () => {
    for (const path of ['/', '/api/request', '/health/', '//health', '/metrics.txt']) {
      const { status, body } = await getJson(path);
      assert.equal(status, 404, path);
      assert.equal(typeof body.error, 'string');
    }
  });

  it('answers 405 for methods other than GET', async () => {
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const { status, body, headers } = await getJson('/api/requests', { method });
      assert.equal(status, 405, method);
      assert.equal(headers.get('allow'), 'GET, HEAD');
      assert.equal(typeof body.error, 'string');
    }
  });

  it('answers HEAD like GET, without a body', async () => {
    const res = await fetch(`${base}/health`, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), '');
  });

  it('rejects with a one-line message when the port is taken', async () => {
    await assert.rejects(
      startApiServer({ host: '127.0.0.1', port: server.port, store, health: () => ({ ok: true, body: {} }), metrics: async () => ({ contentType: 'text/plain', body: '' }) }),
      { message: `cannot listen on 127.0.0.1:${server.port}: address in use` },
    );
  });
});

describe('API server shutdown', () => {
  it('closes even with a keep-alive client connected', async () => {
    const server = await startApiServer({
      host: '127.0.0.1',
      port: 0,
      store: new RequestStore(1),
      health: () => ({ ok: true, body: {} }),
      metrics: async () => ({ contentType: 'text/plain', body: '' }),
    });
    const res = await fetch(`http://127.0.0.1:${server.port}/health`, { headers: { connection: 'keep-alive' } });
    await res.text();
    await server.close();
    await assert.rejects(fetch(`http://127.0.0.1:${server.port}/health`));
  });
});

describe('API access (issue 13, finding 4)', () => {
  const store = new RequestStore(10);
  store.add(record('secret-1', { correlation_id: 'customer-42' }));
  const token = 't0ken-'.repeat(4);
  const servers: ApiServer[] = [];
  const start = (extra: { token?: string; endpoints?: 'all' | 'metrics' }) =>
    startApiServer({
      host: '127.0.0.1',
      port: 0,
      store,
      health: () => ({ ok: true, body: { status: 'ok' } }),
      metrics: async () => ({ contentType: 'text/plain', body: 'perfcatch_requests_total 1\n' }),
      ...extra,
    }).then((s) => (servers.push(s), `http://127.0.0.1:${s.port}`));
  after(async () => {
    for (const s of servers) await s.close();
  });

  it('with a token, /api/* needs Authorization: Bearer <token> or X-PerfCatch-Token; /health and /metrics do not', async () => {
    const base = await start({ token });
    for (const path of ['/api/requests', '/api/requests/secret-1', '/api/services', '/api/openapi.json']) {
      const none = await fetch(base + path);
      assert.equal(none.status, 401, path);
      assert.equal(none.headers.get('www-authenticate'), 'Bearer');
      assert.equal((await fetch(base + path, { headers: { authorization: 'Bearer wrong' } })).status, 401, path);
      assert.equal((await fetch(base + path, { headers: { authorization: `Bearer ${token}` } })).status, 200, path);
      // The header the Kubernetes API server's pod proxy forwards (it keeps Authorization).
      assert.equal((await fetch(base + path, { headers: { 'x-perfcatch-token': token } })).status, 200, path);
      assert.equal((await fetch(base + path, { headers: { 'x-perfcatch-token': 'wrong' } })).status, 401, path);
      assert.equal((await fetch(base + path, { headers: { 'x-perfcatch-token': '' } })).status, 401, path);
    }
    assert.equal((await fetch(base + '/health')).status, 200);
    assert.equal((await fetch(base + '/metrics')).status, 200);
  });

  it('the metrics listener serves /metrics and /health, never request data', async () => {
    const base = await start({ endpoints: 'metrics' });
    assert.equal((await fetch(base + '/metrics')).status, 200);
    assert.equal((await fetch(base + '/health')).status, 200);
    for (const path of ['/api/requests', '/api/requests/secret-1', '/api/services', '/api/openapi.json']) {
      const res = await fetch(base + path);
      assert.equal(res.status, 404, path);
      assert.doesNotMatch(await res.text(), /customer-42/);
    }
  });
});
