/**
 * Spans are encoded straight into OTLP protobuf. This reads the encoded
 * ExportTraceServiceRequest back with a minimal wire-format reader and checks every field a
 * backend reads: resource, scope, ids, parent, name, kind, times, attributes, status, flags.
 * (The e2e tests check the same spans in a real Collector and in Jaeger.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExportResultCode } from '@opentelemetry/core';
import { ProtobufWriter } from '../../src/util/protobuf-writer.ts';
import { SpanBuilder } from '../../src/otel/span-builder.ts';
import { SpanExportQueue, type EncodedSpanBatch } from '../../src/otel/span-export.ts';
import type { BuiltDependency } from '../../src/pipeline/dependency-builder.ts';
import type { BuiltRequest } from '../../src/pipeline/request-builder.ts';
import { sampleRecord } from './sample-record.ts';
import { TraceSampler } from '../../src/otel/sampler.ts';
import { hostOfAuthority, type SpanBuilderOptions } from '../../src/otel/span-builder.ts';
import { nonConventionNames } from '../harness/semconv-names.ts';

type Field = Buffer | bigint | number;

/** Fields of one message by number, in order. */
function readMessage(buf: Buffer): Map<number, Field[]> {
  const out = new Map<number, Field[]>();
  let pos = 0;
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    for (;;) {
      const b = buf[pos++]!;
      v += (b & 0x7f) * mul;
      if (b < 0x80) return v;
      mul *= 128;
    }
  };
  while (pos < buf.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    let value: Field;
    switch (key & 7) {
      case 0:
        value = varint();
        break;
      case 1:
        value = buf.readBigUInt64LE(pos);
        pos += 8;
        break;
      case 2: {
        const n = varint();
        value = buf.subarray(pos, pos + n);
        pos += n;
        break;
      }
      case 5:
        value = buf.readUInt32LE(pos);
        pos += 4;
        break;
      default:
        throw new Error(`wire type ${key & 7}`);
    }
    if (!out.has(field)) out.set(field, []);
    out.get(field)!.push(value);
  }
  assert.equal(pos, buf.length, 'message ends exactly at its length');
  return out;
}

const one = (m: Map<number, Field[]>, f: number) => m.get(f)?.[0];
const all = (m: Map<number, Field[]>, f: number) => (m.get(f) ?? []) as Buffer[];

/** KeyValue list -> { key: string | number | boolean | double }. */
function attributes(kvs: Buffer[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of kvs) {
    const m = readMessage(kv);
    const any = readMessage(one(m, 2) as Buffer);
    const key = (one(m, 1) as Buffer).toString();
    if (any.has(1)) out[key] = (one(any, 1) as Buffer).toString();
    else if (any.has(2)) out[key] = one(any, 2) === 1;
    else if (any.has(3)) out[key] = one(any, 3);
    else out[key] = { double: (one(any, 4) as bigint) };
  }
  return out;
}

interface DecodedSpan {
  resource: Record<string, unknown>;
  scope: string;
  traceId: string;
  spanId: string;
  parentSpanId: string | null;
  name: string;
  kind: number;
  start: bigint;
  end: bigint;
  attributes: Record<string, unknown>;
  statusCode: number;
  flags: number;
}

function decodeRequest(bytes: Uint8Array): DecodedSpan[] {
  const spans: DecodedSpan[] = [];
  for (const rs of all(readMessage(Buffer.from(bytes)), 1)) {
    const resourceSpans = readMessage(rs);
    const resource = attributes(all(readMessage(one(resourceSpans, 1) as Buffer), 1));
    for (const ss of all(resourceSpans, 2)) {
      const scopeSpans = readMessage(ss);
      const scope = (one(readMessage(one(scopeSpans, 1) as Buffer), 1) as Buffer).toString();
      for (const s of all(scopeSpans, 2)) {
        const span = readMessage(s);
        const status = span.has(15) ? readMessage(one(span, 15) as Buffer) : null;
        spans.push({
          resource,
          scope,
          traceId: (one(span, 1) as Buffer).toString('hex'),
          spanId: (one(span, 2) as Buffer).toString('hex'),
          parentSpanId: span.has(4) ? (one(span, 4) as Buffer).toString('hex') : null,
          name: (one(span, 5) as Buffer).toString(),
          kind: one(span, 6) as number,
          start: one(span, 7) as bigint,
          end: one(span, 8) as bigint,
          attributes: attributes(all(span, 9)),
          statusCode: status ? (one(status, 3) as number) : 0,
          flags: one(span, 16) as number,
        });
      }
    }
  }
  return spans;
}

function exportOnce(build: (b: SpanBuilder) => void, opts: SpanBuilderOptions = {}, expectBatch = true): DecodedSpan[] {
  const sent: EncodedSpanBatch[] = [];
  const queue = new SpanExportQueue({
    export: (batch, done) => {
      sent.push({ bytes: Buffer.from(batch.bytes), spans: batch.spans });
      done({ code: ExportResultCode.SUCCESS });
    },
    shutdown: async () => {},
  });
  build(new SpanBuilder((resource, span) => queue.add(resource, span), opts));
  queue.flush();
  void queue.shutdown(0);
  if (!expectBatch) {
    assert.equal(sent.length, 0);
    return [];
  }
  assert.equal(sent.length, 1);
  const spans = decodeRequest(sent[0]!.bytes);
  assert.equal(spans.length, sent[0]!.spans);
  assert.equal(queue.counters.exported, spans.length);
  return spans;
}

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';
const SPAN = 'a3ce929d0e0e4736';

function builtRequest(overrides: Partial<BuiltRequest> = {}, record = sampleRecord()): BuiltRequest {
  return {
    record,
    startNs: 1_800_000_000_123_456_789n,
    endNs: 1_800_000_000_133_456_789n,
    cpuNs: 1_234_567,
    localAddr: '127.0.0.1',
    seq: 3,
    http: { method: 'GET', path: '/orders/42', query: 'x=1', version: '1.1', headers: new Map([['user-agent', 'curl/8 ünïcode']]), complete: true },
    traceParent: null,
    captureIncomplete: false,
    isHttp: true,
    dependencies: [],
    pod: null,
    callerExchangeKey: null,
    generation: 1,
    connId: 3,
    ...overrides,
  };
}

describe('OTLP span encoding', () => {
  it('encodes a SERVER span with its resource, attributes and remote parent', () => {
    const record = sampleRecord({
      trace_id: TRACE,
      span_id: SPAN,
      request_id: SPAN,
      parent_span_id: PARENT,
      http_path: '/orders/42?<redacted>',
      route: '/orders/{id}', // what the request builder derives from the path
      http_status: 503,
      correlation_id: 'corr-7',
      memory_rss_bytes: 2 ** 50 + 1, // an int64 whose varint takes 8 bytes
    });
    const traceParent = { traceId: TRACE, parentSpanId: PARENT, sampled: false };
    const [span, ...rest] = exportOnce((b) => b.build(builtRequest({ traceParent, captureIncomplete: true }, record)));
    assert.equal(rest.length, 0);
    assert.equal(span!.resource['service.name'], 'checkout');
    assert.equal(span!.resource['process.executable.name'], 'node');
    assert.equal(span!.resource['telemetry.sdk.name'], 'perfcatch');
    assert.equal(span!.scope, 'perfcatch');
    assert.equal(span!.traceId, TRACE);
    assert.equal(span!.spanId, SPAN);
    assert.equal(span!.parentSpanId, PARENT);
    assert.equal(span!.name, 'GET /orders/{id}');
    assert.equal(span!.kind, 2, 'SPAN_KIND_SERVER');
    assert.equal(span!.start, 1_800_000_000_123_456_789n);
    assert.equal(span!.end, 1_800_000_000_133_456_789n);
    assert.equal(span!.statusCode, 2, 'STATUS_CODE_ERROR for a 5xx');
    assert.equal(span!.flags, 0x301, 'sampled, parent known to be remote');
    assert.deepEqual(span!.attributes, {
      'network.transport': 'tcp',
      'server.port': 8080,
      'network.local.address': '127.0.0.1',
      'network.local.port': 8080,
      'client.address': '127.0.0.1',
      'client.port': 50000,
      'network.peer.address': '127.0.0.1',
      'network.peer.port': 50000,
      'http.request.size': 100,
      'http.response.size': 200,
      'process.pid': 100,
      'perfcatch.cpu_time_ns': 1_234_567,
      'perfcatch.memory_rss_bytes': 2 ** 50 + 1,
      'perfcatch.request_id': SPAN,
      'perfcatch.connection.request_seq': 3,
      'url.scheme': 'http',
      'http.request.method': 'GET',
      'url.path': '/orders/42',
      'network.protocol.name': 'http',
      'network.protocol.version': '1.1',
      'perfcatch.route': '/orders/{id}',
      'url.query': '<redacted>',
      'user_agent.original': 'curl/8 ünïcode',
      'http.response.status_code': 503,
      'error.type': '503',
      'perfcatch.correlation_id': 'corr-7',
      'perfcatch.cpu_attribution': 'exact',
      'perfcatch.cpu_after_response_ns': 50_000,
      'perfcatch.capture_incomplete': true,
    });
  });

  it("gives each span its own connection's ends and process, also when the ports repeat", () => {
    // The connection attributes are encoded once per connection: same ports, another peer,
    // another local address or another process must not reuse what was encoded for the first.
    const ends = [
      { pid: 100, localAddr: '127.0.0.1', remote_ip: '127.0.0.1' },
      { pid: 100, localAddr: '127.0.0.1', remote_ip: '10.0.0.9' },
      { pid: 100, localAddr: '10.0.0.1', remote_ip: '10.0.0.9' },
      { pid: 200, localAddr: '10.0.0.1', remote_ip: '10.0.0.9' },
      { pid: 100, localAddr: '127.0.0.1', remote_ip: '127.0.0.1' },
    ];
    const spans = exportOnce((b) => {
      for (const e of ends) b.build(builtRequest({ localAddr: e.localAddr }, sampleRecord({ pid: e.pid, remote_ip: e.remote_ip })));
    });
    assert.equal(spans.length, ends.length);
    for (const [i, e] of ends.entries()) {
      const a = spans[i]!.attributes;
      assert.deepEqual(
        [a['process.pid'], a['network.local.address'], a['client.address'], a['network.peer.address'], a['server.port'], a['client.port']],
        [e.pid, e.localAddr, e.remote_ip, e.remote_ip, 8080, 50000],
        `span ${i}`,
      );
    }
  });

  it('encodes a non-HTTP request and an unset status, with no parent', () => {
    const record = sampleRecord({ trace_id: TRACE, span_id: SPAN, http_method: null, http_path: null, http_status: null });
    const [span] = exportOnce((b) => b.build(builtRequest({ http: null, isHttp: false, endNs: 1n }, record)));
    assert.equal(span!.name, 'tcp request');
    assert.equal(span!.parentSpanId, null);
    assert.equal(span!.statusCode, 0);
    assert.equal(span!.flags, 0x101);
    assert.equal(span!.end, span!.start, 'an end before the start is clamped');
    assert.equal(span!.attributes['http.request.method'], undefined);
  });

  it('encodes CLIENT spans under their parent, and groups spans by resource', () => {
    const parent = sampleRecord({ trace_id: TRACE, span_id: SPAN });
    const other = sampleRecord({ trace_id: TRACE, span_id: PARENT, service_name: 'billing' });
    const dep: BuiltDependency = {
      record: {
        timestamp: 1,
        peer_ip: '10.0.0.2',
        peer_port: 5432,
        new_connection: true,
        connect_ms: 0.25,
        duration_ms: 3,
        bytes_sent: 10,
        bytes_received: 20,
        http_method: 'POST',
        http_path: '/charge',
        http_status: 404,
        caller_attribution: 'inferred',
        span_id: '1111111111111111',
      },
      startNs: 10n,
      endNs: 20n,
      http: { method: 'POST', path: '/charge', query: null, version: '1.1', headers: new Map([['host', 'pay:80']]), complete: true },
      exchangeKey: '9:1',
      newConnection: true,
      localAddr: '10.0.0.1',
      localPort: 40000,
    };
    const spans = exportOnce((b) => {
      b.buildClient(dep, parent);
      b.build(builtRequest({}, other));
      b.buildClient({ ...dep, record: { ...dep.record, span_id: '2222222222222222' } }, parent);
    });
    assert.deepEqual(spans.map((s) => [s.resource['service.name'], s.spanId]), [
      ['checkout', '1111111111111111'],
      ['checkout', '2222222222222222'],
      ['billing', PARENT],
    ]);
    const client = spans[0]!;
    assert.equal(client.kind, 3, 'SPAN_KIND_CLIENT');
    assert.equal(client.traceId, TRACE);
    assert.equal(client.parentSpanId, SPAN);
    assert.equal(client.name, 'POST /charge');
    assert.equal(client.statusCode, 2, 'a 4xx answer is a client-side error');
    assert.equal(client.flags, 0x101);
    assert.equal(client.attributes['url.full'], 'http://pay:80/charge');
    assert.equal(client.attributes['perfcatch.new_connection'], true);
    assert.equal(client.attributes['perfcatch.caller_attribution'], 'inferred');
    assert.ok(typeof client.attributes['perfcatch.connect_ms'] === 'object', 'a fractional number is a double');
  });

  it('writes lengths of every size, and strings beyond the ASCII fast path', () => {
    const strings = ['', 'ascii', 'é'.repeat(60), 'x'.repeat(127), 'x'.repeat(128), 'é'.repeat(300) + 'x'.repeat(20_000)];
    const w = new ProtobufWriter(4); // grows as it goes
    for (const s of strings) {
      w.tag(1, 2);
      w.string(s);
    }
    const decoded = all(readMessage(w.view()), 1).map((b) => b.toString('utf8'));
    assert.deepEqual(decoded, strings);
  });

  /** A double attribute as decoded above (its fixed64 bits) back to its value. */
  const doubleOf = (v: unknown): number => {
    const bits = Buffer.alloc(8);
    bits.writeBigUInt64LE((v as { double: bigint }).double);
    return bits.readDoubleLE(0);
  };

  it('span attribute values survive at the edges of the one-pass writers (string lengths, varint sizes, non-ASCII, non-integers)', () => {
    const paths = ['/', '/' + 'a'.repeat(118), '/' + 'b'.repeat(119), '/' + 'c'.repeat(120), '/' + 'd'.repeat(200), '/caf\u00e9', '/' + 'e'.repeat(119) + '\u00e9', '/\u{1f600}'];
    const numbers = [0, 127, 128, 16_383, 16_384, 2 ** 31 - 1, 2 ** 31, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER];
    const cases = paths.map((path, i) => ({ path, sent: numbers[i % numbers.length]!, received: numbers[(i + 3) % numbers.length]! }));
    const spans = exportOnce((b) => {
      for (const c of cases) {
        const record = sampleRecord({ http_path: c.path, bytes_sent: c.sent, bytes_received: c.received, cpu_after_response_ms: -0.0015 });
        b.build(builtRequest({ http: { method: 'GET', path: c.path, query: null, version: '1.1', headers: new Map(), complete: true }, cpuNs: c.sent + 0.5 }, record));
      }
    });
    assert.equal(spans.length, cases.length);
    for (const [i, c] of cases.entries()) {
      const a = spans[i]!.attributes;
      assert.equal(a['url.path'], c.path, `path of length ${c.path.length}`);
      assert.equal(a['http.response.size'], c.sent);
      assert.equal(a['http.request.size'], c.received);
      assert.equal(doubleOf(a['perfcatch.cpu_time_ns']), c.sent + 0.5, 'not an integer: a double');
      assert.equal(doubleOf(a['perfcatch.cpu_after_response_ns']), -1500, 'negative: a double');
      assert.equal(a['perfcatch.connection.request_seq'], 3, 'the attribute after them is intact');
    }
  });

  it('drops and counts spans beyond the queue bound', () => {
    const queue = new SpanExportQueue({ export: () => {}, shutdown: async () => {} }, { maxQueue: 3, maxBatch: 100 });
    const builder = new SpanBuilder((resource, span) => queue.add(resource, span));
    for (let i = 0; i < 5; i++) builder.build(builtRequest());
    assert.equal(queue.counters.queued, 3);
    assert.equal(queue.counters.dropped, 2);
    void queue.shutdown(0);
  });

  it('reuses a request\'s memory only once its export is done: bytes in flight or awaiting a retry stay intact', () => {
    const held: { batch: EncodedSpanBatch; copy: Buffer; done: (r: { code: ExportResultCode }) => void }[] = [];
    const queue = new SpanExportQueue(
      { export: (batch, done) => held.push({ batch, copy: Buffer.from(batch.bytes), done }), shutdown: async () => {} },
      { requests: { initialBackoffMs: 0, maxBackoffMs: 0 } },
    );
    const builder = new SpanBuilder((resource, span) => queue.add(resource, span));
    const request = (path: string, n: number) => {
      for (let i = 0; i < n; i++) builder.build(builtRequest({ http: { method: 'GET', path: `${path}/${i}`, query: null, version: '1.1', headers: new Map(), complete: true } }));
      queue.flush();
      return held[held.length - 1]!;
    };
    const paths = (r: { batch: EncodedSpanBatch }) => decodeRequest(r.batch.bytes).map((span) => span.attributes['url.path']);
    const first = request('/first', 20);
    const second = request('/second', 10);
    assert.notEqual(second.batch.bytes.buffer, first.batch.bytes.buffer, 'the first is in flight: its memory is not reused');
    first.done({ code: ExportResultCode.FAILED }); // retried: still held
    const retry = held[2]!;
    assert.equal(retry.batch.bytes, first.batch.bytes);
    const third = request('/third', 5);
    assert.notEqual(third.batch.bytes.buffer, first.batch.bytes.buffer, 'awaiting its retry: not reused');
    assert.deepEqual(Buffer.from(first.batch.bytes), first.copy);
    retry.done({ code: ExportResultCode.SUCCESS });
    const fourth = request('/fourth', 15);
    assert.equal(fourth.batch.bytes.buffer, first.batch.bytes.buffer, 'sent: its memory holds the next request');
    assert.deepEqual(paths(fourth), Array.from({ length: 15 }, (_, i) => `/fourth/${i}`));
    assert.deepEqual(Buffer.from(second.batch.bytes), second.copy, 'the others are untouched');
    assert.deepEqual(Buffer.from(third.batch.bytes), third.copy);
    assert.equal(queue.counters.exported, 20);
    void queue.shutdown(0);
  });

  it('replaces spare request memory too small for the requests of a busier hour', () => {
    const held: { batch: EncodedSpanBatch; done: (r: { code: ExportResultCode }) => void }[] = [];
    const queue = new SpanExportQueue({ export: (batch, done) => held.push({ batch, done }), shutdown: async () => {} }, { maxBatch: 10_000 });
    const builder = new SpanBuilder((resource, span) => queue.add(resource, span));
    const request = (n: number) => {
      for (let i = 0; i < n; i++) builder.build(builtRequest());
      queue.flush();
      return held[held.length - 1]!;
    };
    const send = (r: (typeof held)[number]) => r.done({ code: ExportResultCode.SUCCESS });
    // Two small requests in flight at once, then sent: two small spares.
    const small = [request(5), request(5)];
    small.forEach(send);
    const large = request(1_000);
    assert.ok(large.batch.bytes.length > 2 * small[0]!.batch.bytes.buffer.byteLength, 'the test needs a request the small spares cannot hold');
    send(large);
    const next = request(1_000);
    assert.equal(next.batch.bytes.buffer, large.batch.bytes.buffer, 'the large request\'s memory was kept and holds the next one');
    assert.equal(decodeRequest(next.batch.bytes).length, 1_000);
    void queue.shutdown(0);
  });

  describe('semantic conventions', () => {
    const pod = { namespace: 'shop', podName: 'checkout-1', podUid: 'u-1', containerName: 'app', nodeName: 'n1', deploymentName: 'checkout', serviceName: 'checkout' };
    const dependency = (status: number): BuiltDependency => ({
      record: { timestamp: 1, peer_ip: '10.0.0.2', peer_port: 80, new_connection: true, connect_ms: 0.5, duration_ms: 1, bytes_sent: 1, bytes_received: 2, http_method: 'GET', http_path: '/x', http_status: status, caller_attribution: 'exact', span_id: '3333333333333333' },
      startNs: 1n,
      endNs: 2n,
      http: { method: 'GET', path: '/x', query: null, version: '1.1', headers: new Map([['host', 'api:80']]), complete: true },
      exchangeKey: '1:1',
      newConnection: true,
      localAddr: '10.0.0.1',
      localPort: 40000,
    });

    it('every exported attribute name is in @opentelemetry/semantic-conventions or under perfcatch.', () => {
      const parent = sampleRecord({ trace_id: TRACE, span_id: SPAN, http_status: 500, correlation_id: 'c' });
      const spans = exportOnce((b) => {
        // Every optional attribute present: HTTP with a query, Host, user agent, a remote
        // parent, an incomplete capture, a pod; a non-HTTP request; a CLIENT span with HTTP.
        const http = { method: 'GET', path: '/a', query: 'q=1', version: '1.1', headers: new Map([['host', 'shop.example:8080'], ['user-agent', 'ua']]), complete: true };
        b.build(builtRequest({ http, pod, captureIncomplete: true, traceParent: { traceId: TRACE, parentSpanId: PARENT, sampled: true } }, sampleRecord({ ...parent, parent_span_id: PARENT, http_path: '/a?q=1' })));
        b.build(builtRequest({ http: null, isHttp: false }, sampleRecord({ http_method: null, http_path: null, http_status: null })));
        b.buildClient(dependency(503), parent);
      });
      assert.equal(spans.length, 3);
      const names = spans.flatMap((s) => [...Object.keys(s.attributes), ...Object.keys(s.resource)]);
      assert.ok(names.includes('k8s.pod.uid') && names.includes('url.query') && names.includes('server.address') && names.includes('error.type'));
      assert.deepEqual(nonConventionNames(names), []);
    });

    it('error.type is the status code next to ERROR: SERVER from 500, CLIENT from 400', () => {
      const at = (status: number) => {
        const [server, client] = exportOnce((b) => {
          const r = sampleRecord({ trace_id: TRACE, span_id: SPAN, http_status: status });
          b.build(builtRequest({}, r));
          b.buildClient(dependency(status), r);
        });
        return [server!.attributes['error.type'] ?? null, server!.statusCode, client!.attributes['error.type'] ?? null, client!.statusCode];
      };
      assert.deepEqual(at(200), [null, 0, null, 0]);
      assert.deepEqual(at(404), [null, 0, '404', 2]);
      assert.deepEqual(at(503), ['503', 2, '503', 2]);
    });

    it('server.address is the Host header without its port', () => {
      const cases: [string | undefined, string | null][] = [
        ['shop.example:8080', 'shop.example'],
        ['shop.example', 'shop.example'],
        ['[::1]:8080', '::1'],
        ['10.0.0.1:80', '10.0.0.1'],
        ['', null],
        [':80', null],
        ['user@host', null],
        [undefined, null],
      ];
      for (const [header, expected] of cases) assert.equal(hostOfAuthority(header), expected, String(header));
      const [span] = exportOnce((b) => b.build(builtRequest({ http: { method: 'GET', path: '/', query: null, version: '1.1', headers: new Map([['host', 'api.example:443']]), complete: true } })));
      assert.equal(span!.attributes['server.address'], 'api.example');
    });
  });

  describe('OTEL_TRACES_SAMPLER and OTEL_RESOURCE_ATTRIBUTES in the builder', () => {
    it('a sampled-out request and its CLIENT spans are counted, not encoded', () => {
      let builder: SpanBuilder | undefined;
      exportOnce((b) => {
        builder = b;
        const r = sampleRecord({ trace_id: TRACE, span_id: SPAN });
        b.build(builtRequest({}, r));
        b.buildClient({ record: { timestamp: 1, peer_ip: '10.0.0.2', peer_port: 80, new_connection: false, connect_ms: null, duration_ms: 1, bytes_sent: 1, bytes_received: 2, http_method: null, http_path: null, http_status: null, caller_attribution: 'exact', span_id: '4444444444444444' }, startNs: 1n, endNs: 2n, http: null, exchangeKey: '1:1', newConnection: false, localAddr: '10.0.0.1', localPort: 40000 }, r);
      }, { sampler: new TraceSampler({ name: 'always_off', ratio: 1 }) }, false);
      assert.equal(builder!.sampledOut, 2);
    });

    it('a parent-based sampler follows the traceparent flag', () => {
      const sampler = new TraceSampler({ name: 'parentbased_always_on', ratio: 1 });
      const spans = exportOnce((b) => {
        b.build(builtRequest({ traceParent: { traceId: TRACE, parentSpanId: PARENT, sampled: false } }, sampleRecord({ trace_id: TRACE, span_id: SPAN, parent_span_id: PARENT })));
        b.build(builtRequest({ traceParent: { traceId: TRACE, parentSpanId: PARENT, sampled: true } }, sampleRecord({ trace_id: TRACE, span_id: '5555555555555555', parent_span_id: PARENT })));
      }, { sampler });
      assert.deepEqual(spans.map((s) => s.spanId), ['5555555555555555']);
    });

    it('OTEL_RESOURCE_ATTRIBUTES are in every Resource, below what PerfCatch knows', () => {
      const [span] = exportOnce((b) => b.build(builtRequest()), { resourceAttributes: { 'k8s.cluster.name': 'eu-1', 'service.name': 'not-this' } });
      assert.equal(span!.resource['k8s.cluster.name'], 'eu-1');
      assert.equal(span!.resource['service.name'], 'checkout');
    });
  });
});
