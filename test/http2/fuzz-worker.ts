/** Worker thread of test/unit/http2-fuzz.test.ts: one seed's share of the fuzz. */
import { parentPort, workerData } from 'node:worker_threads';
import { runFuzz } from './fuzz-run.ts';

const { seed, iterations } = workerData as { seed: number; iterations: number };
try {
  parentPort!.postMessage({ summary: runFuzz(seed, iterations) });
} catch (err) {
  parentPort!.postMessage({ error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
}
