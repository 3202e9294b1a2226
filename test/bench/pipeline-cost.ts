/**
 * Userspace cost per request, without the kernel: replays the recorded loader stream
 * (test/fixtures/loader-stream.bin) many times, with fresh connection ids, through the
 * decoder, the request pipeline, the ring buffer, the metrics, span encoding and the export
 * queue's request encoding (handed to a transport that drops them: no gzip, no gRPC), and
 * prints µs per request: wall time, and CPU time of all the process's threads (V8 compiles and
 * collects garbage on helper threads).
 *   node test/bench/pipeline-cost.ts [--requests N] [--no-spans] [--burst N --pause MS]
 */
import { readFileSync } from 'node:fs';
import { FrameReader } from '../../src/decode/frame-reader.ts';
import { REQUEST, DATA, RecordType } from '../../src/decode/layout.ts';
import { decodeRecord } from '../../src/decode/records.ts';
import { ProcessInfoCache } from '../../src/enrich/process-info.ts';
import { CorrelationExtractor } from '../../src/http/correlation.ts';
import { AgentMetrics } from '../../src/metrics/agent-metrics.ts';
import { ExportResultCode } from '@opentelemetry/core';
import { SpanBuilder } from '../../src/otel/span-builder.ts';
import { SpanExportQueue } from '../../src/otel/span-export.ts';
import { RequestPipeline } from '../../src/pipeline/pipeline.ts';
import { RequestStore } from '../../src/store/request-store.ts';
import type { PipelineCounters } from '../../src/types.ts';

const arg = (name: string, fallback: number) => Number(process.argv[process.argv.indexOf(name) + 1] || fallback) || fallback;
const requests = arg('--requests', 200_000);
const spansOn = !process.argv.includes('--no-spans');

// Frames of the fixture, split so that conn ids can be rewritten per replay.
const frames: Buffer[] = [];
new FrameReader((f) => frames.push(Buffer.from(f))).push(readFileSync(new URL('../fixtures/loader-stream.bin', import.meta.url)));
const kernelFrames = frames.filter((f) => [RecordType.REQUEST, RecordType.DATA].includes(f.readUInt32LE(0) as 1 | 2));
const originalIds = new Map(
  kernelFrames.map((f) => [f, f.readBigUInt64LE(f.readUInt32LE(0) === RecordType.REQUEST ? REQUEST.conn_id : DATA.conn_id)] as const),
);
const perReplay = kernelFrames.filter((f) => f.readUInt32LE(0) === RecordType.REQUEST).length;

const store = new RequestStore(50_000);
const counters = (): PipelineCounters => ({ kernel: {}, loader: {}, agent: {} as PipelineCounters['agent'] });
const metrics = new AgentMetrics({ counters, buffer: () => ({ size: store.size, capacity: store.capacity }) });
let spans = 0;
const queue = new SpanExportQueue({
  export: (batch, done) => {
    spans += batch.spans;
    done({ code: ExportResultCode.SUCCESS });
  },
  shutdown: async () => {},
});
const pipeline = new RequestPipeline(
  { correlation: new CorrelationExtractor([]), processes: new ProcessInfoCache(), keepQuery: false },
  spansOn ? new SpanBuilder((resource, span) => queue.add(resource, span)) : null,
  // As the agent wires it: the store is the pipeline's history (it stores each request).
  { record: (r) => metrics.recordRequest(r), updated: () => {} },
  undefined,
  store,
);

const replays = Math.ceil(requests / perReplay);
// --burst N: hand the pipeline N requests at a time, then yield to the event loop for --pause
// ms, as the live agent gets a drained batch; 0 replays in one loop.
const burst = arg('--burst', 0);
const pauseMs = arg('--pause', 0);
const t0 = process.hrtime.bigint();
const cpu0 = process.cpuUsage(); // every thread's: V8's compiler and GC helpers too
let inBurst = 0;
for (let i = 0; i < replays; i++) {
  for (const f of kernelFrames) {
    // A new connection id per replay: conn_id sits at the same offset in both record kinds' layouts.
    const off = f.readUInt32LE(0) === RecordType.REQUEST ? REQUEST.conn_id : DATA.conn_id;
    f.writeBigUInt64LE(originalIds.get(f)! ^ (BigInt(i + 1) << 32n), off);
    const rec = decodeRecord(f);
    if (rec.kind === 'request' || rec.kind === 'data') pipeline.handle(rec);
  }
  pipeline.detach(); // as the agent does after each stdout chunk
  inBurst += perReplay;
  if (burst > 0 && inBurst >= burst) {
    inBurst = 0;
    await new Promise((resolve) => setTimeout(resolve, pauseMs));
  }
}
queue.flush(); // the last, partial batch
const ns = Number(process.hrtime.bigint() - t0);
const cpu = process.cpuUsage(cpu0);
const total = replays * perReplay;
console.log(JSON.stringify({ requests: total, burst, pause_ms: pauseMs, us_per_request: (ns / total / 1000).toFixed(2), cpu_us_per_request: ((cpu.user + cpu.system) / total).toFixed(2), spans, heap_mb: (process.memoryUsage().heapUsed / 2 ** 20).toFixed(0) }));
