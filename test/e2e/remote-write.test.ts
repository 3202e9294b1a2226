/**
 * Prometheus remote-write export against a real VictoriaMetrics: every per-request sample
 * (value and millisecond timestamp) must come back exactly through /api/v1/export, on series
 * with exactly the bounded label set. Also: the wire format itself (headers, Snappy, sorted
 * labels, time-ordered samples, one request in flight) as a local receiver sees it, and that
 * a dead endpoint or a full queue drops and counts without throwing.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { uncompress } from 'snappyjs';
import { MAX_ROUTES_PER_SERVICE } from '../../src/metrics/agent-metrics.ts';
import { REMOTE_WRITE_SERIES, RemoteWriter, requestLabels } from '../../src/export/remote-write.ts';
import type { RequestRecord } from '../../src/types.ts';
import { freePort, waitFor } from '../harness/ports.ts';
import { decodeWriteRequest } from '../harness/remote-write-decode.ts';
import { startVictoriaMetrics, type RunningVictoriaMetrics } from '../harness/victoria-metrics.ts';
import { sampleRecord } from '../unit/sample-record.ts';

const METRIC_NAMES = REMOTE_WRITE_SERIES.map(([name]) => name);
const SERVICES = ['checkout', 'search', 'auth'];
const STATUSES = [200, 201, 404, 500, 503, null];
const METHODS = ['GET', 'post', 'PROPFIND', null];

/** n records a few minutes old, with distinct timestamps (whole ms) and exact-in-float values. */
function makeRecords(n: number, tag: string): RequestRecord[] {
  const base = Date.now() - 5 * 60_000;
  const out: RequestRecord[] = [];
  for (let i = 0; i < n; i++) {
    const k8s = i % 5 === 0;
    out.push(
      sampleRecord({
        request_id: `req-${tag}-${i}`,
        trace_id: i.toString(16).padStart(32, '0'),
        timestamp: (base + i * 1237) / 1000,
        service_name: `${tag}-${SERVICES[i % SERVICES.length]}`,
        process_name: i % 2 ? 'node' : 'python3',
        namespace: k8s ? 'shop' : null,
        pod_name: k8s ? `shop-${i % 2}` : null,
        route: i % 7 === 0 ? null : '/orders/{id}',
        http_path: `/orders/${1000 + i}?session=${tag}${i}`,
        local_port: 8080 + (i % 2),
        http_method: METHODS[i % METHODS.length] ?? null,
        http_status: STATUSES[i % STATUSES.length] ?? null,
        duration_ms: 1.25 * (i + 1),
        cpu_time_ms: 0.5 + i / 4,
        bytes_received: 100 + i * 3,
        bytes_sent: 2000 + i * 17,
        memory_rss_bytes: 50_000_000 + i * 4096,
      }),
    );
  }
  return out;
}

function expectedValue(name: string, r: RequestRecord): number {
  const read = REMOTE_WRITE_SERIES.find(([n]) => n === name)?.[1];
  assert.ok(read);
  return read(r);
}

/** The labels a record's series must carry (without __name__), by hand from the spec. */
function expectedLabels(r: RequestRecord): Record<string, string> {
  const method = r.http_method?.toUpperCase();
  const labels: Record<string, string> = {
    service: r.service_name,
    process: r.process_name,
    port: String(r.local_port),
    method: method === 'GET' || method === 'POST' ? method : 'OTHER',
    status_class: r.http_status === null ? 'none' : `${Math.floor(r.http_status / 100)}xx`,
    route: r.route ?? 'none',
  };
  if (r.namespace !== null) labels.namespace = r.namespace;
  if (r.pod_name !== null) labels.pod = r.pod_name;
  return labels;
}

const seriesKey = (name: string, labels: Record<string, string>) =>
  JSON.stringify([name, Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1))]);

/** What each series must hold: samples in timestamp order. */
function expectedSeries(records: RequestRecord[]): Map<string, { timestamps: number[]; values: number[] }> {
  const map = new Map<string, { t: number; v: number }[]>();
  for (const r of records) {
    for (const name of METRIC_NAMES) {
      const key = seriesKey(name, expectedLabels(r));
      const list = map.get(key) ?? [];
      list.push({ t: Math.round(r.timestamp * 1000), v: expectedValue(name, r) });
      map.set(key, list);
    }
  }
  return new Map(
    [...map].map(([k, list]) => {
      list.sort((a, b) => a.t - b.t);
      return [k, { timestamps: list.map((s) => s.t), values: list.map((s) => s.v) }];
    }),
  );
}

function shuffled<T>(xs: T[]): T[] {
  // Deterministic reorder (odd indices reversed after the evens), so adds are out of time order.
  return [...xs.filter((_, i) => i % 2 === 0), ...xs.filter((_, i) => i % 2 === 1).reverse()];
}

describe('Prometheus remote write', { timeout: 300_000 }, () => {
  let vm: RunningVictoriaMetrics;
  before(async () => {
    vm = await startVictoriaMetrics();
  });
  after(async () => {
    await vm?.stop();
  });

  it('every per-request sample arrives in VictoriaMetrics exactly, on bounded labels only', async () => {
    const records = makeRecords(50, 'rw');
    const writer = new RemoteWriter({ url: vm.writeUrl, flushIntervalMs: 200 });
    for (const r of shuffled(records)) writer.add(r);
    const total = records.length * METRIC_NAMES.length;
    await waitFor('remote write flush', () => (writer.counters.samplesSent === total ? true : undefined), 20_000);
    await writer.shutdown();
    assert.deepEqual(writer.counters, { samplesSent: total, samplesDropped: 0, requestsFailed: 0, lastError: null });

    const exported = await vm.exportSeries('{__name__=~"perfcatch_request_.*",service=~"rw-.*"}');
    const expected = expectedSeries(records);
    assert.equal(exported.length, expected.size, 'one series per metric and label set');
    let samples = 0;
    for (const s of exported) {
      const { __name__: name, ...labels } = s.metric;
      assert.ok(name && METRIC_NAMES.includes(name as (typeof METRIC_NAMES)[number]), `metric ${name}`);
      const allowed = ['service', 'process', 'namespace', 'pod', 'port', 'method', 'status_class', 'route'];
      for (const l of Object.keys(labels)) assert.ok(allowed.includes(l), `unexpected label ${l}`);
      for (const forbidden of ['request_id', 'trace_id', 'span_id', 'path', 'http_path', 'remote_ip', 'correlation_id']) {
        assert.ok(!(forbidden in labels), `label ${forbidden} must not exist`);
      }
      for (const v of Object.values(labels)) assert.ok(!v.includes('req-') && !v.includes('/orders/1'), `unbounded value ${v}`);
      const want = expected.get(seriesKey(name, labels));
      assert.ok(want, `unexpected series ${JSON.stringify(s.metric)}`);
      // Export returns samples in time order; the values and ms timestamps must be exact.
      assert.deepEqual(s.timestamps, want.timestamps, `timestamps of ${JSON.stringify(s.metric)}`);
      assert.deepEqual(s.values, want.values, `values of ${JSON.stringify(s.metric)}`);
      samples += s.values.length;
    }
    assert.equal(samples, total);
    assert.equal(samples, writer.counters.samplesSent);

    // And PromQL sees them: one duration sample per request over the window.
    const vec = await vm.query('sum(count_over_time(perfcatch_request_duration_ms{service=~"rw-.*"}[1h]))');
    assert.equal(vec.result[0]?.value[1], String(records.length));
  });

  it('sends snappy protobuf with the remote-write headers, sorted labels, time-ordered samples, one request at a time', async () => {
    const bodies: { headers: IncomingHttpHeaders; body: Buffer }[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const server = createServer((req, res) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        bodies.push({ headers: req.headers, body: Buffer.concat(chunks) });
        // Slower than the flush interval: the writer must not start a second request.
        setTimeout(() => {
          inFlight--;
          res.writeHead(204).end();
        }, 300);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    try {
      const records = makeRecords(30, 'wire');
      const writer = new RemoteWriter({ url: `http://127.0.0.1:${port}/api/v1/write`, flushIntervalMs: 20 });
      for (const r of shuffled(records).slice(0, 20)) writer.add(r);
      await waitFor('first request', () => (inFlight > 0 ? true : undefined));
      for (const r of shuffled(records).slice(20)) writer.add(r);
      await new Promise((r) => setTimeout(r, 150));
      await writer.shutdown();
      assert.equal(maxInFlight, 1);
      assert.equal(writer.counters.samplesSent, records.length * METRIC_NAMES.length);
      assert.ok(bodies.length >= 2);

      const seen = new Map<string, { timestamps: number[]; values: number[] }>();
      for (const { headers, body } of bodies) {
        assert.equal(headers['content-encoding'], 'snappy');
        assert.equal(headers['content-type'], 'application/x-protobuf');
        assert.equal(headers['x-prometheus-remote-write-version'], '0.1.0');
        for (const ts of decodeWriteRequest(uncompress(new Uint8Array(body)))) {
          const names = ts.labels.map(([n]) => n);
          assert.deepEqual(names, [...names].sort(), 'labels sorted by name');
          assert.equal(new Set(names).size, names.length);
          assert.equal(names[0], '__name__');
          const times = ts.samples.map((s) => s.timestamp);
          assert.deepEqual(times, [...times].sort((a, b) => a - b), 'samples in timestamp order');
          const { __name__: name, ...labels } = Object.fromEntries(ts.labels);
          const key = seriesKey(name!, labels);
          const acc = seen.get(key) ?? { timestamps: [], values: [] };
          acc.timestamps.push(...times);
          acc.values.push(...ts.samples.map((s) => s.value));
          seen.set(key, acc);
        }
      }
      const expected = expectedSeries(records);
      assert.equal(seen.size, expected.size);
      for (const [key, want] of expected) {
        const got = seen.get(key);
        assert.ok(got, key);
        const order = got.timestamps.map((t, i) => [t, got.values[i]!] as const).sort((a, b) => a[0] - b[0]);
        assert.deepEqual(order.map(([t]) => t), want.timestamps);
        assert.deepEqual(order.map(([, v]) => v), want.values);
      }
      // The exported label helper agrees with the spec-by-hand version.
      for (const r of records) assert.deepEqual(Object.fromEntries(requestLabels(r)), expectedLabels(r));
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it(`routes past ${MAX_ROUTES_PER_SERVICE} per service are labelled "other"`, async () => {
    const writer = new RemoteWriter({ url: vm.writeUrl, flushIntervalMs: 60_000 });
    const base = Date.now() - 60_000;
    const n = MAX_ROUTES_PER_SERVICE + 5;
    for (let i = 0; i < n; i++) {
      writer.add(sampleRecord({ service_name: 'routes-a', route: `/r${i}`, timestamp: (base + i) / 1000 }));
    }
    // Null routes do not use up the cap; another service has its own.
    writer.add(sampleRecord({ service_name: 'routes-a', route: null, timestamp: (base + n) / 1000 }));
    writer.add(sampleRecord({ service_name: 'routes-b', route: `/r${n}`, timestamp: (base + n) / 1000 }));
    writer.add(sampleRecord({ service_name: 'routes-a', route: '/r0', timestamp: (base + n + 1) / 1000 }));
    await writer.shutdown();
    assert.equal(writer.counters.samplesSent, (n + 3) * METRIC_NAMES.length);
    const exported = await vm.exportSeries('perfcatch_request_duration_ms{service=~"routes-.*"}');
    const count = (service: string, route: string) =>
      exported.filter((s) => s.metric.service === service && s.metric.route === route).reduce((k, s) => k + s.values.length, 0);
    assert.equal(exported.length, MAX_ROUTES_PER_SERVICE + 3);
    assert.equal(count('routes-a', 'other'), 5);
    assert.equal(count('routes-a', 'none'), 1);
    assert.equal(count('routes-a', '/r0'), 2);
    assert.equal(count('routes-b', `/r${n}`), 1);
  });

  it('a dead endpoint drops and counts the batch and never throws', async () => {
    const port = await freePort();
    const writer = new RemoteWriter({ url: `http://127.0.0.1:${port}/api/v1/write`, flushIntervalMs: 50, timeoutMs: 2000 });
    for (const r of makeRecords(3, 'dead')) writer.add(r);
    await waitFor('failed request', () => (writer.counters.requestsFailed >= 1 ? true : undefined), 10_000);
    for (const r of makeRecords(2, 'dead2')) writer.add(r);
    await writer.shutdown();
    assert.equal(writer.counters.samplesSent, 0);
    assert.equal(writer.counters.samplesDropped, 25);
    assert.equal(writer.counters.requestsFailed, 2);
    assert.equal(writer.queued, 0);
    assert.match(writer.counters.lastError ?? '', /fetch failed|ECONNREFUSED/);
  });

  it('a non-2xx answer counts as a failure', async () => {
    const writer = new RemoteWriter({ url: `${vm.url}/no/such/endpoint`, flushIntervalMs: 60_000 });
    writer.add(makeRecords(1, 'bad')[0]!);
    await writer.shutdown();
    assert.equal(writer.counters.requestsFailed, 1);
    assert.equal(writer.counters.samplesDropped, 5);
    assert.match(writer.counters.lastError ?? '', /^HTTP 4\d\d/);
  });

  it('a full queue drops and counts whole requests', async () => {
    const writer = new RemoteWriter({ url: vm.writeUrl, flushIntervalMs: 60_000, maxQueue: 12 });
    const records = makeRecords(4, 'full');
    for (const r of records) writer.add(r);
    assert.equal(writer.queued, 10);
    assert.equal(writer.counters.samplesDropped, 10);
    await writer.shutdown();
    assert.deepEqual(writer.counters, { samplesSent: 10, samplesDropped: 10, requestsFailed: 0, lastError: null });

    const exported = await vm.exportSeries('{__name__=~"perfcatch_request_.*",service=~"full-.*"}');
    const sent = expectedSeries(records.slice(0, 2));
    assert.equal(exported.length, sent.size);
    assert.equal(exported.reduce((n, s) => n + s.values.length, 0), 10);
    for (const s of exported) {
      const { __name__: name, ...labels } = s.metric;
      assert.deepEqual({ timestamps: s.timestamps, values: s.values }, sent.get(seriesKey(name!, labels)));
    }
  });
});
