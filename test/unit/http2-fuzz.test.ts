/**
 * Seeded fuzz of the HTTP/2 decoding core (frames + HPACK + stream assembly): the full million
 * mutated inputs (issue 12), split over worker threads with a seed each (test/http2/fuzz-run.ts
 * says what is mutated and checked). Nothing throws, nothing hangs (the test runner's timeout),
 * every fed byte is accounted for, and no header comes from anywhere but the input.
 *
 * PERFCATCH_FUZZ_ITERATIONS sets the total (default 1,000,000), PERFCATCH_FUZZ_WORKERS the
 * threads (default: the CPUs, at most 4).
 */
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import type { FuzzSummary } from '../http2/fuzz-run.ts';

const ITERATIONS = Number(process.env.PERFCATCH_FUZZ_ITERATIONS ?? 1_000_000);
const WORKERS = Number(process.env.PERFCATCH_FUZZ_WORKERS ?? Math.min(4, availableParallelism()));
const SEED = 0x4832_2026;

function inWorker(seed: number, iterations: number): Promise<FuzzSummary> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('../http2/fuzz-worker.ts', import.meta.url), { workerData: { seed, iterations } });
    worker.once('message', (m: { summary?: FuzzSummary; error?: string }) => (m.summary ? resolve(m.summary) : reject(new Error(m.error))));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`fuzz worker exited ${code} without a result`)));
  });
}

describe(`HTTP/2 fuzz (seed ${SEED.toString(16)})`, () => {
  it(`${ITERATIONS.toLocaleString('en')} mutated captures through frames, HPACK and streams in ${WORKERS} threads: no throw, every byte accounted, no header from nowhere`, async () => {
    const started = performance.now();
    const shares = Array.from({ length: WORKERS }, (_, k) => Math.floor(ITERATIONS / WORKERS) + (k < ITERATIONS % WORKERS ? 1 : 0));
    const results = await Promise.all(shares.map((n, k) => inWorker(SEED + k, n)));
    const total = results.reduce((s, r) => ({ inputs: s.inputs + r.inputs, fields: s.fields + r.fields, records: s.records + r.records, desynced: s.desynced + r.desynced }));
    const ms = performance.now() - started;
    console.log(`# ${total.inputs} inputs in ${ms.toFixed(0)} ms (${WORKERS} threads): ${total.fields} header fields checked, ${total.records} stream records, ${total.desynced} connections desynced`);
    assert.equal(total.inputs, ITERATIONS);
    assert.ok(total.fields > ITERATIONS, 'the mutations still reach the HPACK decoder');
  });
});
