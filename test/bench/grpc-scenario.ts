/**
 * Bench scenarios g and h (`npm run bench`, test/bench/run.ts): gRPC unary calls at
 * saturation, the grpc-go server of test/servers/grpc-go driven by its own client's load mode:
 * goroutines on one connection (g: 100 concurrent streams, h: 10), small OK calls, for the
 * scenario's duration. The agent's figures per request are per call (one stream each).
 *
 * The lost-records column counts loss stages, and a kernel walk that stops (kernel_h2_walk_lost,
 * one per direction) loses every later stream of its connection: so each run also prints the
 * calls recorded out of the calls made.
 */
import { execFileSync } from 'node:child_process';
import { buildGrpcGo, startGrpcGoServer } from '../harness/grpc-peers.ts';

/** Scenario id and concurrent streams. */
export const GRPC_SCENARIOS: readonly [id: string, streams: number][] = [
  ['g', 100],
  ['h', 10],
];

/** As run.ts's LoadResult. */
interface CallLoad {
  requests: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
}

export interface GrpcBench {
  port: number;
  /** Runs the load for `seconds` with `streams` concurrent calls and returns what the client measured. */
  load(seconds: number, streams: number): CallLoad;
  stop(): Promise<void>;
}

export async function startGrpcBench(): Promise<GrpcBench> {
  // No truth file: a line per call would weigh on the server at this rate.
  const server = await startGrpcGoServer('/dev/null');
  const client = buildGrpcGo();
  return {
    port: server.port,
    load(seconds, streams) {
      const out = execFileSync(client, ['load', `127.0.0.1:${server.port}`, String(seconds), String(streams)], { encoding: 'utf8' });
      const j = JSON.parse(out) as { requests: number; errors: number; rps: number; p50_ms: number; p99_ms: number };
      if (j.errors > 0) throw new Error(`bench g: ${j.errors} of ${j.requests} calls failed`);
      return { requests: j.requests, rps: j.rps, p50Ms: j.p50_ms, p99Ms: j.p99_ms };
    },
    stop: async () => {
      await server.stop();
    },
  };
}
