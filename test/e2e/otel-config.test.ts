/**
 * The shipped Collector configurations (otel-config/*.yaml) against a real Collector
 * (test/peers/build-otelcol.sh): every file passes `otelcol validate` with the env vars it
 * reads, and two real round trips: tail-sampling.yaml keeps a CPU-heavy, a slow and an error
 * trace and drops a fast OK one (baseline share 0); vendor-otlp.yaml strips credential
 * attributes and sends the API-key header.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SpanKind, SpanStatusCode, TraceFlags, type Attributes, type SpanContext, type SpanStatus } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { hrTimeFromEpochNs } from '../harness/sdk-spans.ts';
import { ROOT } from '../harness/agent.ts';
import { attrMap, otelcolBinary, startCollector, type OtlpSpan, type ReceivedSpan, type RunningCollector } from '../harness/collector.ts';
import { freePort, waitFor } from '../harness/ports.ts';
import { spawnTracked, type Spawned } from '../harness/processes.ts';

const CONFIG_DIR = join(ROOT, 'otel-config');
const CONFIGS = readdirSync(CONFIG_DIR)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

/** Sample values for env vars a config reads without a default (validation needs them set). */
const REQUIRED_ENV_SAMPLES: Record<string, string> = {
  VENDOR_OTLP_ENDPOINT: 'https://otlp.example.com',
  OTLP_API_KEY: 'test-api-key',
};

interface EnvRef {
  name: string;
  hasDefault: boolean;
}

function envRefs(text: string): EnvRef[] {
  const refs = new Map<string, EnvRef>();
  for (const m of text.matchAll(/\$\{env:([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}/g)) {
    const name = m[1]!;
    const prev = refs.get(name);
    refs.set(name, { name, hasDefault: (prev?.hasDefault ?? true) && m[2] !== undefined });
  }
  return [...refs.values()];
}

/** The leading comment block of a file. */
function headerComment(text: string): string {
  const lines: string[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('#')) break;
    lines.push(line);
  }
  return lines.join('\n');
}

/** process.env without any of the config's variables, plus `set`. */
function envWith(vars: string[], set: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const v of vars) delete env[v];
  return { ...env, ...set };
}

function validate(file: string, env: NodeJS.ProcessEnv): { status: number | null; output: string } {
  const r = spawnSync(otelcolBinary(), ['validate', '--config', file], { env, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

function tcpOpen(port: number): Promise<true | undefined> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(undefined));
  });
}

/** Starts the real collector with these config files (merged in order) and waits for its ports. */
async function startOtelcol(configs: string[], env: NodeJS.ProcessEnv, ports: number[]): Promise<Spawned> {
  const s = spawnTracked(otelcolBinary(), configs.flatMap((c) => ['--config', c]), { env });
  for (const port of ports) {
    await waitFor(`collector port ${port}`, () => {
      if (s.child.exitCode !== null) throw new Error(`collector exited: ${s.output()}`);
      return tcpOpen(port);
    });
  }
  return s;
}

/** Listens on free local ports instead of 4317/4318, and keeps internal telemetry off (no :8888). */
async function localOverride(dir: string): Promise<{ file: string; grpcPort: number; httpPort: number }> {
  const grpcPort = await freePort();
  const httpPort = await freePort();
  const file = join(dir, 'local-override.yaml');
  writeFileSync(
    file,
    `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:${grpcPort}
      http:
        endpoint: 127.0.0.1:${httpPort}
service:
  telemetry:
    metrics:
      level: none
`,
  );
  return { file, grpcPort, httpPort };
}

function span(
  service: string,
  name: string,
  ctx: SpanContext,
  parent: SpanContext | undefined,
  startNs: bigint,
  durationNs: bigint,
  attributes: Attributes,
  status: SpanStatus = { code: SpanStatusCode.UNSET },
): ReadableSpan {
  const endNs = startNs + durationNs;
  return {
    name,
    kind: SpanKind.SERVER,
    spanContext: () => ctx,
    parentSpanContext: parent,
    startTime: hrTimeFromEpochNs(startNs),
    endTime: hrTimeFromEpochNs(endNs),
    duration: hrTimeFromEpochNs(durationNs),
    status,
    attributes,
    links: [],
    events: [],
    ended: true,
    resource: resourceFromAttributes({ 'service.name': service }),
    instrumentationScope: { name: 'perfcatch', version: '0.1.0' },
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
  };
}

function ctx(traceId: string): SpanContext {
  return { traceId, spanId: randomBytes(8).toString('hex'), traceFlags: TraceFlags.SAMPLED };
}

function requestAttrs(path: string, cpuNs: number, status: number): Attributes {
  return {
    'http.request.method': 'GET',
    'url.path': path,
    'server.port': 8080,
    'http.response.status_code': status,
    'perfcatch.cpu_time_ns': cpuNs,
    'perfcatch.correlation_id': `corr-${path}`,
  };
}

async function send(endpoint: string, spans: ReadableSpan[]): Promise<void> {
  const exporter = new OTLPTraceExporter({ url: endpoint });
  const result = await new Promise<ExportResult>((resolve) => exporter.export(spans, resolve));
  await exporter.shutdown();
  assert.equal(result.code, ExportResultCode.SUCCESS, `export failed: ${String(result.error)}`);
}

describe('otel-config/*.yaml', { timeout: 900_000 }, () => {
  before(() => {
    otelcolBinary(); // build (or reuse) the pinned collector before any timed step
  });

  it('has configs and documents each in the README', () => {
    assert.ok(CONFIGS.length >= 4, `configs: ${CONFIGS.join(', ')}`);
    const readme = readFileSync(join(CONFIG_DIR, 'README.md'), 'utf8');
    for (const f of CONFIGS) assert.ok(readme.includes(`otel-config/${f}`), `README.md does not mention otel-config/${f}`);
  });

  for (const f of CONFIGS) {
    it(`${f}: passes \`otelcol validate\` and documents its env vars`, () => {
      const file = join(CONFIG_DIR, f);
      const text = readFileSync(file, 'utf8');
      const refs = envRefs(text);
      const header = headerComment(text);
      assert.ok(header.length > 0, `${f} has no leading comment`);
      for (const r of refs) assert.ok(header.includes(r.name), `${f}: the header comment does not mention ${r.name}`);
      const set: Record<string, string> = {};
      for (const r of refs.filter((x) => !x.hasDefault)) {
        const sample = REQUIRED_ENV_SAMPLES[r.name];
        assert.ok(sample !== undefined, `${f} requires ${r.name}: add a sample value to REQUIRED_ENV_SAMPLES`);
        set[r.name] = sample;
      }
      const names = refs.map((r) => r.name);
      const ok = validate(file, envWith(names, set));
      assert.equal(ok.status, 0, `otelcol validate --config ${f} failed:\n${ok.output}`);
    });
  }

  it('validation is meaningful: vendor-otlp.yaml without its endpoint fails', () => {
    const file = join(CONFIG_DIR, 'vendor-otlp.yaml');
    const r = validate(file, envWith(['VENDOR_OTLP_ENDPOINT', 'OTLP_API_KEY'], { OTLP_API_KEY: 'k' }));
    assert.notEqual(r.status, 0, r.output);
    assert.match(r.output, /endpoint/);
  });

  describe('tail-sampling.yaml round trip', () => {
    let sink: RunningCollector;
    let sampler: Spawned | undefined;
    let samplerGrpc = '';

    before(async () => {
      sink = await startCollector();
      const dir = mkdtempSync(join(tmpdir(), 'perfcatch-otel-config-'));
      const o = await localOverride(dir);
      const env = envWith([], {
        JAEGER_OTLP_ENDPOINT: sink.grpcEndpoint.replace(/^http:\/\//, ''),
        TAIL_SAMPLING_BASELINE_PERCENT: '0',
        TAIL_SAMPLING_DECISION_WAIT: '1s',
        METRICS_OTLP_ENDPOINT: 'http://127.0.0.1:9',
      });
      sampler = await startOtelcol([join(CONFIG_DIR, 'tail-sampling.yaml'), o.file], env, [o.grpcPort, o.httpPort]);
      samplerGrpc = `http://127.0.0.1:${o.grpcPort}`;
    });

    after(async () => {
      await sampler?.stop();
      await sink?.stop();
    });

    it('keeps CPU-heavy, slow and error traces, drops a fast OK one (baseline 0%)', async () => {
      const t0 = BigInt(Date.now()) * 1_000_000n;
      const ms = 1_000_000n;
      // CPU-heavy: a cheap root whose downstream child burned 200 ms of CPU in 40 ms of wall
      // time (no latency or error policy matches). The whole trace must be kept.
      const heavyId = randomBytes(16).toString('hex');
      const heavyRoot = ctx(heavyId);
      const heavyChild = ctx(heavyId);
      // Slow: 700 ms, little CPU.
      const slowId = randomBytes(16).toString('hex');
      // Error: fast, cheap, 503 -> status ERROR.
      const errorId = randomBytes(16).toString('hex');
      // Fast, cheap, OK: matches no policy; baseline share is 0 so it must be dropped.
      const fastId = randomBytes(16).toString('hex');
      const spans = [
        span('checkout', 'GET /fast', ctx(fastId), undefined, t0, 8n * ms, requestAttrs('/fast', 2_000_000, 200)),
        span('checkout', 'GET /report', heavyRoot, undefined, t0, 50n * ms, requestAttrs('/report', 3_000_000, 200)),
        span('reports', 'GET /render', heavyChild, heavyRoot, t0 + 5n * ms, 40n * ms, requestAttrs('/render', 200_000_000, 200)),
        span('checkout', 'GET /slow', ctx(slowId), undefined, t0, 700n * ms, requestAttrs('/slow', 1_000_000, 200)),
        span('checkout', 'GET /broken', ctx(errorId), undefined, t0, 5n * ms, requestAttrs('/broken', 1_000_000, 503), { code: SpanStatusCode.ERROR }),
      ];
      await send(samplerGrpc, spans);

      const byTrace = (got: ReceivedSpan[], id: string): ReceivedSpan[] => got.filter((s) => s.span.traceId === id);
      const got = await waitFor(
        'the kept traces in the sink',
        () => {
          const all = sink.spans();
          return byTrace(all, heavyId).length === 2 && byTrace(all, slowId).length === 1 && byTrace(all, errorId).length === 1 ? all : undefined;
        },
        30_000,
        200,
      );
      const heavy = byTrace(got, heavyId);
      assert.deepEqual(heavy.map((s) => s.span.name).sort(), ['GET /render', 'GET /report']);
      const render = heavy.find((s) => s.span.name === 'GET /render')!;
      assert.equal(render.attrs['perfcatch.cpu_time_ns'], 200_000_000);
      assert.equal(render.attrs['perfcatch.correlation_id'], 'corr-/render');
      assert.equal(render.resource['service.name'], 'reports');

      // The fast trace was in the same export, so its decision came in the same tick as the
      // others; allow a further tick, batch timeout and file flush before calling it dropped.
      await new Promise((r) => setTimeout(r, 3_000));
      const final = sink.spans();
      assert.deepEqual(byTrace(final, fastId), [], 'the fast OK trace should have been dropped');
      assert.equal(final.length, 4, `spans in the sink: ${final.map((s) => s.span.name).join(', ')}`);
      assert.equal(sampler?.child.exitCode, null, `sampler exited: ${sampler?.output()}`);
    });
  });

  describe('vendor-otlp.yaml round trip', () => {
    let vendor: Spawned | undefined;
    let collector: Spawned | undefined;
    let collectorGrpc = '';
    let out = '';

    before(async () => {
      const dir = mkdtempSync(join(tmpdir(), 'perfcatch-otel-vendor-'));
      // The "vendor": a collector on OTLP/HTTP that copies the api-key request header into a
      // span attribute (include_metadata + from_context) and writes spans to a file.
      const vendorPort = await freePort();
      out = join(dir, 'vendor-spans.jsonl');
      const vendorConfig = join(dir, 'vendor.yaml');
      writeFileSync(
        vendorConfig,
        `receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:${vendorPort}
        include_metadata: true
processors:
  attributes/header:
    actions:
      - key: test.received_api_key
        from_context: metadata.api-key
        action: insert
exporters:
  file:
    path: ${out}
    flush_interval: 100ms
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      processors: [attributes/header]
      exporters: [file]
`,
      );
      vendor = await startOtelcol([vendorConfig], envWith([], {}), [vendorPort]);
      const o = await localOverride(dir);
      const env = envWith([], { VENDOR_OTLP_ENDPOINT: `http://127.0.0.1:${vendorPort}`, OTLP_API_KEY: 'secret-vendor-key' });
      collector = await startOtelcol([join(CONFIG_DIR, 'vendor-otlp.yaml'), o.file], env, [o.grpcPort, o.httpPort]);
      collectorGrpc = `http://127.0.0.1:${o.grpcPort}`;
    });

    after(async () => {
      await collector?.stop();
      await vendor?.stop();
    });

    it('deletes authorization/cookie header attributes and sends the API key', async () => {
      const traceId = randomBytes(16).toString('hex');
      const t0 = BigInt(Date.now()) * 1_000_000n;
      await send(collectorGrpc, [
        span('checkout', 'GET /login', ctx(traceId), undefined, t0, 5_000_000n, {
          ...requestAttrs('/login', 1_000_000, 200),
          'http.request.header.authorization': ['Bearer leaked'],
          'http.request.header.cookie': ['session=leaked'],
          'http.request.header.x-request-id': ['abc'],
        }),
      ]);
      const received = await waitFor(
        'the span at the vendor',
        () => {
          if (!existsSync(out)) return undefined;
          for (const line of readFileSync(out, 'utf8').split('\n')) {
            if (!line.trim()) continue;
            const doc = JSON.parse(line) as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] };
            for (const rs of doc.resourceSpans) for (const ss of rs.scopeSpans) for (const s of ss.spans) if (s.traceId === traceId) return attrMap(s.attributes);
          }
          return undefined;
        },
        30_000,
        200,
      );
      assert.equal(received['http.request.header.authorization'], undefined);
      assert.equal(received['http.request.header.cookie'], undefined);
      assert.ok(received['http.request.header.x-request-id'] !== undefined, 'other header attributes pass through');
      assert.equal(received['perfcatch.cpu_time_ns'], 1_000_000);
      assert.equal(received['url.path'], '/login');
      assert.equal(received['test.received_api_key'], 'secret-vendor-key');
    });
  });
});
