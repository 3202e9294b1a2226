/**
 * Issue 13, finding 9: span export through a collector that hangs. Time is scaled 1:20 (a
 * 3 s hang with 0.5 s export deadlines stands for 60 s with 10 s deadlines) at 2,000 spans/s.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { ExportQueue, type ExportRequest } from '../../src/otel/export-queue.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A collector that answers at once, or hangs (each export fails at its deadline) while `hung`. */
function collector(deadlineMs: number) {
  const state = { hung: false, accepted: 0, attempts: 0, maxInFlight: 0, inFlight: 0 };
  const send = (request: ExportRequest, done: (r: ExportResult) => void) => {
    state.attempts++;
    state.inFlight++;
    state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
    const finish = (r: ExportResult) => {
      state.inFlight--;
      done(r);
    };
    if (state.hung) setTimeout(() => finish({ code: ExportResultCode.FAILED, error: new Error('4 DEADLINE_EXCEEDED') }), deadlineMs);
    else setImmediate(() => {
      state.accepted += request.items;
      finish({ code: ExportResultCode.SUCCESS });
    });
  };
  return { state, send };
}

/** Feeds `perSecond` items in 100-item requests of 100 * 420 bytes for `ms`. */
async function feed(queue: ExportQueue, perSecond: number, ms: number): Promise<number> {
  let items = 0;
  const tickMs = (100 / perSecond) * 1000;
  for (let t = 0; t < ms; t += tickMs) {
    queue.enqueue({ bytes: new Uint8Array(100 * 420), items: 100 });
    items += 100;
    await sleep(tickMs);
  }
  return items;
}

describe('export queue through a collector hang (time scaled 1:20: a 3 s hang with 0.5 s deadlines)', () => {
  it('2,000 spans/s through a 60 s hang: nothing lost once the collector is back, a few exports in flight, bytes bounded', async () => {
    const c = collector(500);
    const queue = new ExportQueue(c.send, { maxBytes: 64 * 1024 * 1024, maxInFlight: 4, initialBackoffMs: 50, maxBackoffMs: 1_500, maxAgeMs: 15_000 });
    let maxBytes = 0;
    const watch = setInterval(() => (maxBytes = Math.max(maxBytes, queue.counters.queuedBytes)), 10);
    let sent = await feed(queue, 2_000, 500);
    c.state.hung = true;
    sent += await feed(queue, 2_000, 3_000);
    c.state.hung = false;
    sent += await feed(queue, 2_000, 500);
    for (let i = 0; i < 300 && !queue.idle; i++) await sleep(20);
    clearInterval(watch);
    const k = queue.counters;
    console.log(`# ${sent} spans: ${k.sent} delivered, ${k.dropped} dropped, ${k.failed} failed, ${k.retries} retries, ${c.state.attempts} attempts, peak ${(maxBytes / 1e6).toFixed(1)} MB queued, ${c.state.maxInFlight} in flight at most`);
    assert.equal(k.sent, sent);
    assert.equal(c.state.accepted, sent);
    assert.equal(k.dropped + k.failed, 0);
    assert.ok(k.retries > 0);
    assert.ok(c.state.maxInFlight > 1 && c.state.maxInFlight <= 4);
    assert.ok(maxBytes <= 64 * 1024 * 1024);
  });

  it('a queue too small for the hang drops the oldest and counts them: delivered + dropped + failed = all', async () => {
    const c = collector(200);
    const queue = new ExportQueue(c.send, { maxBytes: 1024 * 1024, maxInFlight: 2, initialBackoffMs: 50, maxBackoffMs: 400, maxAgeMs: 15_000 });
    c.state.hung = true;
    let sent = await feed(queue, 2_000, 1_500);
    assert.ok(queue.counters.queuedBytes <= 1024 * 1024);
    c.state.hung = false;
    sent += await feed(queue, 2_000, 200);
    for (let i = 0; i < 300 && !queue.idle; i++) await sleep(20);
    const k = queue.counters;
    assert.ok(k.dropped > 0);
    assert.equal(k.sent + k.dropped + k.failed, sent);
    assert.equal(c.state.accepted, k.sent);
  });

  it('a collector down for longer than maxAgeMs: requests are given up and counted failed', async () => {
    const c = collector(20);
    const queue = new ExportQueue(c.send, { maxBytes: 1024 * 1024, maxInFlight: 2, initialBackoffMs: 10, maxBackoffMs: 50, maxAgeMs: 300 });
    c.state.hung = true;
    queue.enqueue({ bytes: new Uint8Array(100), items: 7 });
    for (let i = 0; i < 100 && !queue.idle; i++) await sleep(20);
    assert.equal(queue.counters.failed, 7);
    assert.ok(queue.counters.retries >= 2);
    assert.ok(queue.failingSince !== null);
    queue.stop();
  });
});
