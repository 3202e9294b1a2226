import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RequestStore } from '../../src/store/request-store.ts';
import type { RequestRecord } from '../../src/types.ts';
import { sampleDependency, sampleRecord } from './sample-record.ts';

const NOW = 1_800_000_000;

function record(id: number, overrides: Partial<RequestRecord> = {}): RequestRecord {
  return sampleRecord({ request_id: `req-${id}`, timestamp: NOW - 1, ...overrides });
}

const ids = (records: RequestRecord[]) => records.map((r) => r.request_id);

describe('RequestStore', () => {
  it('rejects a non-positive capacity', () => {
    assert.throws(() => new RequestStore(0), RangeError);
    assert.throws(() => new RequestStore(1.5), RangeError);
  });

  it('returns records newest first and grows up to capacity', () => {
    const store = new RequestStore(3);
    assert.equal(store.size, 0);
    assert.deepEqual(store.query({}, NOW), []);
    store.add(record(1));
    store.add(record(2));
    assert.equal(store.size, 2);
    assert.equal(store.capacity, 3);
    assert.deepEqual(ids(store.query({}, NOW)), ['req-2', 'req-1']);
  });

  it('overwrites the oldest record once full', () => {
    const store = new RequestStore(3);
    for (let i = 1; i <= 7; i++) store.add(record(i));
    assert.equal(store.size, 3);
    assert.deepEqual(ids(store.query({}, NOW)), ['req-7', 'req-6', 'req-5']);
    assert.equal(store.findById('req-4'), null);
    assert.equal(store.findById('req-5')?.request_id, 'req-5');
  });

  it('finds by id, keeping the newest record when an id repeats', () => {
    const store = new RequestStore(2);
    store.add(record(1, { duration_ms: 1 }));
    store.add(record(1, { duration_ms: 2 }));
    store.add(record(3)); // evicts the first req-1, which must not drop the newer one
    assert.equal(store.findById('req-1')?.duration_ms, 2);
    assert.equal(store.findById('missing'), null);
  });

  it('stops at limit, defaulting to 50', () => {
    const store = new RequestStore(100);
    for (let i = 0; i < 80; i++) store.add(record(i));
    assert.equal(store.query({}, NOW).length, 50);
    assert.deepEqual(ids(store.query({ limit: 2 }, NOW)), ['req-79', 'req-78']);
  });

  it('filters on every field', () => {
    const store = new RequestStore(10);
    store.add(record(1, { process_name: 'nginx', service_name: 'edge' }));
    store.add(record(2, { correlation_id: 'abc' }));
    store.add(record(3, { http_method: 'post' }));
    store.add(record(4, { http_path: '/users' }));
    store.add(record(5, { http_status: 503 }));
    store.add(record(6, { duration_ms: 900 }));
    store.add(record(7, { http_method: null, http_path: null, http_status: null }));

    assert.deepEqual(ids(store.query({ process: 'nginx' }, NOW)), ['req-1']);
    assert.deepEqual(ids(store.query({ process: 'edge' }, NOW)), ['req-1']);
    assert.deepEqual(ids(store.query({ process: 'ngin' }, NOW)), []);
    assert.deepEqual(ids(store.query({ correlation_id: 'abc' }, NOW)), ['req-2']);
    assert.deepEqual(ids(store.query({ method: 'POST' }, NOW)), ['req-3']);
    assert.deepEqual(ids(store.query({ method: 'Post' }, NOW)), ['req-3']);
    assert.deepEqual(ids(store.query({ path: '/users' }, NOW)), ['req-4']);
    assert.deepEqual(ids(store.query({ path: '/user' }, NOW)), []);
    assert.deepEqual(ids(store.query({ status: 503 }, NOW)), ['req-5']);
    assert.deepEqual(ids(store.query({ min_duration_ms: 900 }, NOW)), ['req-6']);
    assert.deepEqual(ids(store.query({ min_duration_ms: 10, method: 'get', status: 200, path: '/' }, NOW)), ['req-6', 'req-2', 'req-1']);
  });

  it('keeps only records within since_minutes (default 5), newest start first even when stored out of time order', () => {
    const store = new RequestStore(10);
    store.add(record(1, { timestamp: NOW - 4 * 60 }));
    store.add(record(2, { timestamp: NOW - 30 * 60 })); // a long request that finished late
    store.add(record(3, { timestamp: NOW - 6 * 60 }));
    store.add(record(4, { timestamp: NOW - 10 }));
    assert.deepEqual(ids(store.query({}, NOW)), ['req-4', 'req-1']);
    assert.deepEqual(ids(store.query({ since_minutes: 10 }, NOW)), ['req-4', 'req-1', 'req-3']);
    assert.deepEqual(ids(store.query({ since_minutes: 60 }, NOW)), ['req-4', 'req-1', 'req-3', 'req-2']);
    assert.deepEqual(ids(store.query({ since_minutes: 0.5 }, NOW)), ['req-4']);
  });

  it('uses the wall clock when no time is given', () => {
    const store = new RequestStore(2);
    store.add(record(1, { timestamp: Date.now() / 1000 }));
    store.add(record(2, { timestamp: Date.now() / 1000 - 3600 }));
    assert.deepEqual(ids(store.query({})), ['req-1']);
  });

  it('gives back exactly what was stored, canonical hex ids (kept as bytes) or not', () => {
    const store = new RequestStore(4);
    const canonical = sampleRecord({
      request_id: 'a1b2c3d4e5f60718',
      span_id: 'a1b2c3d4e5f60718',
      trace_id: '0123456789abcdef0123456789abcdef',
      parent_span_id: 'ffeeddccbbaa9988',
      namespace: 'shop',
      pod_name: 'checkout-1',
      correlation_id: 'order-7',
      cpu_attribution: 'apportioned',
      http_status: null,
      dependencies: [sampleDependency(0), sampleDependency(1)],
    });
    const odd = sampleRecord({ request_id: 'req-9', span_id: 'ABCDEF0123456789', trace_id: 'not-hex', parent_span_id: null, cpu_attribution: 'unknown' });
    const unparented = sampleRecord({ request_id: '00000000000000aa', span_id: '00000000000000aa', trace_id: 'f'.repeat(32), parent_span_id: null });
    for (const r of [canonical, odd, unparented]) store.add(r);
    assert.deepEqual(store.query({ limit: 10 }, NOW), [unparented, odd, canonical]); // newest first
    assert.deepEqual(store.findById('a1b2c3d4e5f60718'), canonical);
    assert.deepEqual(store.findById('req-9'), odd);
    assert.deepEqual(store.findById('00000000000000aa'), unparented);
    assert.equal(store.findById('ABCDEF0123456789'), null, 'a span_id is not a request_id');
  });

  it('hands out tickets: get and replace work while the ring holds the request', () => {
    const store = new RequestStore(2);
    const t1 = store.add(record(1));
    const t2 = store.add(record(2));
    assert.equal(store.get(t1)?.request_id, 'req-1');
    store.replace(t1, record(1, { duration_ms: 42 }));
    assert.equal(store.findById('req-1')?.duration_ms, 42);
    store.add(record(3)); // overwrites req-1's row
    assert.equal(store.get(t1), null);
    store.replace(t1, record(1, { duration_ms: 99 })); // gone: must not overwrite req-3
    assert.equal(store.findById('req-3')?.duration_ms, 10);
    assert.equal(store.get(t2)?.request_id, 'req-2');
    assert.equal(store.get(t2 + 5), null);
  });
});
