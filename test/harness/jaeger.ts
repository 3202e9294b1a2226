/**
 * A real Jaeger v2 (built by test/peers/build-jaeger.sh, cached): memory storage, OTLP/gRPC and
 * OTLP/HTTP receivers, and the query API the Jaeger UI uses (/api/traces, /api/services).
 *
 * Every port Jaeger opens is a free one picked here, and everything else is switched off, so a
 * Jaeger never collides with another peer or another test (default ports: 4317/4318 OTLP,
 * 16686/16685 query HTTP/gRPC, 8888 internal metrics, 13133 health, 5778/5779 sampling,
 * 14250/14268/6831/6832 Jaeger receivers, 9411 Zipkin, 27777 expvar, 27778 zpages).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './agent.ts';
import { freePort, waitFor } from './ports.ts';
import { spawnTracked, type Spawned } from './processes.ts';

/** A tag or process tag in Jaeger's JSON model (type: string, bool, int64, float64, binary). */
export interface JaegerKeyValue {
  key: string;
  type: string;
  value: string | number | boolean;
}

export interface JaegerReference {
  refType: 'CHILD_OF' | 'FOLLOWS_FROM';
  traceID: string;
  spanID: string;
}

export interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  references: JaegerReference[];
  /** Microseconds since the epoch. */
  startTime: number;
  /** Microseconds. */
  duration: number;
  tags: JaegerKeyValue[];
  processID: string;
  warnings?: string[] | null;
}

export interface JaegerProcess {
  serviceName: string;
  tags: JaegerKeyValue[];
}

/**
 * One trace as /api/traces returns it. Ids are lower-case hex; a trace id whose upper 64 bits
 * are zero comes back as 16 hex digits, otherwise as 32.
 */
export interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
  processes: Record<string, JaegerProcess>;
  warnings?: string[] | null;
}

export interface RunningJaeger extends Spawned {
  /** OTLP/gRPC receiver, e.g. for the agent's --otlp-endpoint. */
  grpcEndpoint: string;
  /** OTLP/HTTP receiver base URL (POST /v1/traces). */
  httpEndpoint: string;
  /** Query service base URL (the UI, and the JSON API under /api). */
  queryUrl: string;
  /** The trace, or null if Jaeger has none with that id (yet). */
  getTrace(traceId: string): Promise<JaegerTrace | null>;
  /** Traces with at least one span of that service, newest first, over all of stored time. */
  findTraces(service: string, limit?: number): Promise<JaegerTrace[]>;
  services(): Promise<string[]>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

interface ApiResponse<T> {
  data: T | null;
  errors?: { code: number; msg: string }[] | null;
}

export function jaegerBinary(): string {
  return execFileSync('bash', [join(ROOT, 'test/peers/build-jaeger.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

export async function startJaeger(): Promise<RunningJaeger> {
  const bin = jaegerBinary();
  const dir = mkdtempSync(join(tmpdir(), 'perfcatch-jaeger-'));
  const [grpcPort, httpPort, queryHttpPort, queryGrpcPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  // Only the components listed under service: are started, so no health check, sampling,
  // expvar, zpages, Jaeger or Zipkin receivers. Internal metrics (default :8888) are off, and so
  // is the query service's self-tracing (on by default in v2), which would export Jaeger's own
  // spans over OTLP to whatever OTEL_EXPORTER_OTLP_ENDPOINT or localhost:4317 points at.
  const config = `
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    storage:
      traces: memstore
    enable_tracing: false
    http:
      endpoint: 127.0.0.1:${queryHttpPort}
    grpc:
      endpoint: 127.0.0.1:${queryGrpcPort}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:${grpcPort}
      http:
        endpoint: 127.0.0.1:${httpPort}
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`;
  const configPath = join(dir, 'config.yaml');
  writeFileSync(configPath, config);
  // No OTEL_* variables: nothing in Jaeger should export anywhere but its own storage.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_')));
  const s = spawnTracked(bin, ['--config', configPath], { env });
  void s.exited.then(() => rmSync(dir, { recursive: true, force: true }));

  const queryUrl = `http://127.0.0.1:${queryHttpPort}`;
  const api = async <T>(path: string): Promise<{ status: number; body: ApiResponse<T> }> => {
    const res = await fetch(`${queryUrl}/api${path}`);
    return { status: res.status, body: (await res.json()) as ApiResponse<T> };
  };

  try {
    // Extensions (the query API) start before the pipelines, so wait for the receivers as well.
    await waitFor(
      'jaeger query API and OTLP receivers',
      async () => {
        if (s.child.exitCode !== null) throw new Error(`jaeger exited ${s.child.exitCode}: ${s.output()}`);
        const res = await fetch(`${queryUrl}/api/services`).catch(() => null);
        if (res?.status !== 200) return undefined;
        return (await portOpen(grpcPort)) && (await portOpen(httpPort)) ? true : undefined;
      },
      60_000,
    );
  } catch (err) {
    await s.stop();
    throw err;
  }

  return {
    ...s,
    grpcEndpoint: `http://127.0.0.1:${grpcPort}`,
    httpEndpoint: `http://127.0.0.1:${httpPort}`,
    queryUrl,
    getTrace: async (traceId) => {
      const { status, body } = await api<JaegerTrace[]>(`/traces/${encodeURIComponent(traceId)}`);
      if (status === 404) return null;
      if (status !== 200) throw new Error(`jaeger /api/traces/${traceId}: HTTP ${status} ${JSON.stringify(body.errors)}`);
      return body.data?.[0] ?? null;
    },
    findTraces: async (service, limit = 1000) => {
      // start/end in microseconds; the default window is only the last lookback period up to now.
      const end = (Date.now() + 86_400_000) * 1000;
      const q = new URLSearchParams({ service, limit: String(limit), start: '0', end: String(end) });
      const { status, body } = await api<JaegerTrace[]>(`/traces?${q}`);
      if (status !== 200) throw new Error(`jaeger /api/traces?${q}: HTTP ${status} ${JSON.stringify(body.errors)}`);
      return body.data ?? [];
    },
    services: async () => {
      const { status, body } = await api<string[]>('/services');
      if (status !== 200) throw new Error(`jaeger /api/services: HTTP ${status} ${JSON.stringify(body.errors)}`);
      return body.data ?? [];
    },
  };
}
