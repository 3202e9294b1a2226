/** A RequestPipeline with no span export that keeps what it records and updates. */
import { ProcessInfoCache } from '../../src/enrich/process-info.ts';
import { CorrelationExtractor } from '../../src/http/correlation.ts';
import { RequestPipeline } from '../../src/pipeline/pipeline.ts';
import type { RequestRecord } from '../../src/types.ts';

export function testPipeline(): { p: RequestPipeline; recorded: RequestRecord[]; updated: RequestRecord[] } {
  const recorded: RequestRecord[] = [];
  const updated: RequestRecord[] = [];
  const p = new RequestPipeline(
    { correlation: new CorrelationExtractor([]), processes: new ProcessInfoCache(), keepQuery: false, pods: null },
    null,
    { record: (r) => recorded.push(r), updated: (r) => updated.push(r) },
  );
  return { p, recorded, updated };
}
