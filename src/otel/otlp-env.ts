/**
 * OTLP exporter settings for one signal (traces or metrics), from PerfCatch's flags and the
 * standard OTEL_EXPORTER_OTLP_* variables, resolved the way the OpenTelemetry SDKs resolve
 * them (https://opentelemetry.io/docs/specs/otel/protocol/exporter/): a signal-specific
 * variable wins over the general one; a general endpoint gets /v1/<signal> appended for HTTP,
 * a signal-specific one is used as is; gRPC never gets a path. Unlike the SDKs, which log a
 * warning and carry on, a bad value is a ConfigError: the agent should not start half-exporting.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, fail, type RawValue } from '../config-error.ts';

export const OTLP_PROTOCOLS = ['http/protobuf', 'grpc'] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];
/** The exporter spec's default. PerfCatch sent only gRPC before (its default port was 4317). */
export const DEFAULT_OTLP_PROTOCOL: OtlpProtocol = 'http/protobuf';
export const DEFAULT_OTLP_TIMEOUT_MS = 10_000;
export const DEFAULT_METRIC_EXPORT_INTERVAL_MS = 10_000;
/**
 * None, as the OpenTelemetry SDKs default (JS, Java, Go, Rust; the exporter spec leaves it to
 * each). gzip shrinks spans about 5:1 but took about a fifth of the agent's CPU at 1,000 req/s
 * (live-cost.ts: 22 against 18 µs per request): worth it across a network that charges bytes,
 * not to a Collector on the node or in the cluster.
 */
export const DEFAULT_OTLP_COMPRESSION: OtlpCompression = 'none';
export type OtlpCompression = 'gzip' | 'none';
export type OtlpSignal = 'traces' | 'metrics';

const SIGNAL_PATH: Record<OtlpSignal, string> = { traces: 'v1/traces', metrics: 'v1/metrics' };

export interface OtlpExportSettings {
  signal: OtlpSignal;
  protocol: OtlpProtocol;
  /**
   * Where requests go. HTTP: the full URL (path included). gRPC: scheme and authority only;
   * http:// means a plaintext channel, https:// TLS.
   */
  url: string;
  /** OTEL_EXPORTER_OTLP_HEADERS merged with the signal's own (which win per key). */
  headers: Record<string, string>;
  timeoutMs: number;
  compression: OtlpCompression;
  /** PEM contents: trusted CA, client certificate chain and its key (mutual TLS). */
  tls: { ca?: Buffer; cert?: Buffer; key?: Buffer };
}

/** `{}` for the general variable, `{}_TRACES`/`{}_METRICS` for a signal's own. */
type SettingName = 'ENDPOINT' | 'PROTOCOL' | 'HEADERS' | 'TIMEOUT' | 'COMPRESSION' | 'CERTIFICATE' | 'CLIENT_CERTIFICATE' | 'CLIENT_KEY' | 'INSECURE';

/** Every standard variable the agent reads, for --help and the README (one home per fact). */
export const OTEL_ENVIRONMENT: readonly { name: string; description: string; defaultText: string }[] = [
  { name: 'OTEL_EXPORTER_OTLP_{,TRACES_,METRICS_}ENDPOINT', description: 'OTLP endpoint; the general one gets /v1/traces or /v1/metrics appended for HTTP, a signal\'s own is used as is (--otlp-endpoint wins, as a general endpoint)', defaultText: 'none (export off)' },
  { name: 'OTEL_EXPORTER_OTLP_{,TRACES_,METRICS_}PROTOCOL', description: `${OTLP_PROTOCOLS.join(' | ')} (--otlp-protocol wins)`, defaultText: DEFAULT_OTLP_PROTOCOL },
  { name: 'OTEL_EXPORTER_OTLP_{,TRACES_,METRICS_}HEADERS', description: 'key=value,... sent with every export (values URL-decoded); a signal\'s own win per key', defaultText: 'none' },
  { name: 'OTEL_EXPORTER_OTLP_{,TRACES_,METRICS_}TIMEOUT', description: 'milliseconds per export request', defaultText: String(DEFAULT_OTLP_TIMEOUT_MS) },
  { name: 'OTEL_EXPORTER_OTLP_{,TRACES_,METRICS_}COMPRESSION', description: 'gzip | none', defaultText: DEFAULT_OTLP_COMPRESSION },
  { name: 'OTEL_EXPORTER_OTLP_{,TRACES_,METRICS_}CERTIFICATE', description: 'PEM file of the CA that signed the endpoint\'s certificate (https://)', defaultText: 'system CAs' },
  { name: 'OTEL_EXPORTER_OTLP_{,TRACES_,METRICS_}CLIENT_CERTIFICATE', description: 'PEM client certificate chain for mutual TLS (with CLIENT_KEY)', defaultText: 'none' },
  { name: 'OTEL_EXPORTER_OTLP_{,TRACES_,METRICS_}CLIENT_KEY', description: 'PEM private key of the client certificate', defaultText: 'none' },
  { name: 'OTEL_EXPORTER_OTLP_{,TRACES_,METRICS_}INSECURE', description: 'true: plaintext gRPC to an endpoint given without a scheme (host:port); http:// and https:// decide by themselves', defaultText: 'false' },
  { name: 'OTEL_RESOURCE_ATTRIBUTES', description: 'key=value,... added to every monitored service\'s Resource and the agent\'s own (the service\'s own service.name wins)', defaultText: 'none' },
  { name: 'OTEL_SERVICE_NAME', description: 'service.name of the agent\'s own telemetry (its OTLP metrics); monitored services keep theirs', defaultText: 'perfcatch-agent' },
  { name: 'OTEL_SDK_DISABLED', description: 'true: no OTLP export at all (spans and metrics); capture, the API and /metrics keep running', defaultText: 'false' },
  { name: 'OTEL_TRACES_SAMPLER', description: 'always_on | always_off | traceidratio | parentbased_always_on | parentbased_always_off | parentbased_traceidratio; drops only the export (requests are still stored and counted; perfcatch_spans_sampled_out_total)', defaultText: 'always_on' },
  { name: 'OTEL_TRACES_SAMPLER_ARG', description: 'ratio 0-1 for the traceidratio samplers', defaultText: '1.0' },
  { name: 'OTEL_METRIC_EXPORT_INTERVAL', description: 'milliseconds between OTLP metric exports (--otlp-metrics)', defaultText: String(DEFAULT_METRIC_EXPORT_INTERVAL_MS) },
];

/** PerfCatch's own flags (or their PERFCATCH_* variables), which win over the standard variables. */
export interface OtlpOverrides {
  /** A general endpoint: for HTTP the signal's path is appended. */
  endpoint?: RawValue | undefined;
  protocol?: RawValue | undefined;
}

type Env = Record<string, string | undefined>;

/** The signal's own variable if set and not blank, else the general one. */
function standard(env: Env, signal: OtlpSignal, name: SettingName): (RawValue & { signalSpecific: boolean }) | undefined {
  for (const [source, signalSpecific] of [[`OTEL_EXPORTER_OTLP_${signal.toUpperCase()}_${name}`, true], [`OTEL_EXPORTER_OTLP_${name}`, false]] as const) {
    const text = env[source];
    if (text !== undefined && text.trim() !== '') return { source, text: text.trim(), signalSpecific };
  }
  return undefined;
}

/** The signal's exporter settings, or null when no endpoint is configured (export off). */
export function resolveOtlpExport(signal: OtlpSignal, overrides: OtlpOverrides, env: Env): OtlpExportSettings | null {
  const endpoint = overrides.endpoint
    ? { ...overrides.endpoint, signalSpecific: false }
    : standard(env, signal, 'ENDPOINT');
  if (!endpoint) return null;
  const protocol = parseProtocol(overrides.protocol ?? standard(env, signal, 'PROTOCOL'));
  const read = (name: SettingName) => standard(env, signal, name);
  const url = protocol === 'grpc'
    ? grpcUrl(endpoint, read('INSECURE'))
    : httpUrl(endpoint, endpoint.signalSpecific ? null : SIGNAL_PATH[signal]);
  const generalHeaders = env.OTEL_EXPORTER_OTLP_HEADERS;
  const ownHeadersName = `OTEL_EXPORTER_OTLP_${signal.toUpperCase()}_HEADERS`;
  const ownHeaders = env[ownHeadersName];
  const cert = readPem(read('CLIENT_CERTIFICATE'));
  const key = readPem(read('CLIENT_KEY'));
  if ((cert === undefined) !== (key === undefined)) {
    throw new ConfigError(`OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY: set both or neither (mutual TLS needs the certificate and its key)`);
  }
  const ca = readPem(read('CERTIFICATE'));
  return {
    signal,
    protocol,
    url,
    headers: {
      ...(generalHeaders ? parseKeyValueList({ source: 'OTEL_EXPORTER_OTLP_HEADERS', text: generalHeaders }) : {}),
      ...(ownHeaders ? parseKeyValueList({ source: ownHeadersName, text: ownHeaders }) : {}),
    },
    timeoutMs: parseTimeout(read('TIMEOUT')),
    compression: parseCompression(read('COMPRESSION')),
    tls: { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) },
  };
}

function parseProtocol(v: RawValue | undefined): OtlpProtocol {
  if (!v) return DEFAULT_OTLP_PROTOCOL;
  const text = v.text.trim().toLowerCase();
  const known = OTLP_PROTOCOLS.find((p) => p === text);
  if (known) return known;
  if (text === 'http/json') fail(v, `${OTLP_PROTOCOLS.join(' or ')} (http/json is not supported: spans are encoded as protobuf)`);
  return fail(v, `one of ${OTLP_PROTOCOLS.join(', ')}`);
}

const HAS_SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;

/** An http(s) URL without credentials, query or fragment. */
function parseUrl(v: RawValue, expected: string): URL {
  let url: URL;
  try {
    url = new URL(v.text.trim());
  } catch {
    fail(v, expected);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') fail(v, expected);
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') fail(v, expected);
  return url;
}

/** OTLP/HTTP: a URL with a scheme; `path` (the signal's) is appended to a general endpoint. */
function httpUrl(v: RawValue, path: string | null): string {
  const text = v.text.trim();
  if (!HAS_SCHEME.test(text) && /^[^/]+:\d+$/.test(text)) {
    fail(v, 'an http:// or https:// URL for OTLP/HTTP (host:port alone is for --otlp-protocol grpc)');
  }
  const url = parseUrl(v, 'an http:// or https:// URL like http://collector:4318');
  if (path === null) return url.href;
  const base = url.href.endsWith('/') ? url.href : `${url.href}/`;
  return base + path;
}

/**
 * OTLP/gRPC: http(s)://host:port or host:port; any path is ignored, as the SDKs do. Without a
 * scheme the channel is TLS unless OTEL_EXPORTER_OTLP_INSECURE=true (the spec's rule).
 */
function grpcUrl(v: RawValue, insecure: RawValue | undefined): string {
  const text = v.text.trim();
  const expected = 'a URL like http://collector:4317, or host:port';
  if (HAS_SCHEME.test(text)) return parseUrl(v, expected).origin;
  if (!/^(\[[0-9a-f:.]+\]|[^\s/:[\]]+):\d+$/i.test(text)) fail(v, expected);
  const plaintext = insecure ? parseTrueFalse(insecure) : false;
  return parseUrl({ ...v, text: `${plaintext ? 'http' : 'https'}://${text}` }, expected).origin;
}

function parseTrueFalse(v: RawValue): boolean {
  const text = v.text.trim().toLowerCase();
  if (text === 'true') return true;
  if (text === 'false') return false;
  return fail(v, 'true or false');
}

function parseTimeout(v: RawValue | undefined): number {
  if (!v) return DEFAULT_OTLP_TIMEOUT_MS;
  const text = v.text.trim();
  const ms = /^\d{1,7}$/.test(text) ? Number(text) : NaN;
  if (!(ms >= 1 && ms <= 3_600_000)) fail(v, 'milliseconds 1-3600000');
  return ms;
}

function parseCompression(v: RawValue | undefined): OtlpCompression {
  if (!v) return DEFAULT_OTLP_COMPRESSION;
  const text = v.text.trim().toLowerCase();
  if (text === 'gzip' || text === 'none') return text;
  return fail(v, 'gzip or none');
}

function readPem(v: RawValue | undefined): Buffer | undefined {
  if (!v) return undefined;
  try {
    return readFileSync(v.text.trim());
  } catch (err) {
    throw new ConfigError(`${v.source}: cannot read ${JSON.stringify(v.text)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

/**
 * `key=value,key2=value2` as OTEL_EXPORTER_OTLP_HEADERS and OTEL_RESOURCE_ATTRIBUTES write it
 * (W3C Baggage without properties): blanks around items are trimmed, values are URL-decoded.
 */
export function parseKeyValueList(v: RawValue): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of v.text.split(',')) {
    if (item.trim() === '') continue;
    const eq = item.indexOf('=');
    const key = eq === -1 ? '' : item.slice(0, eq).trim();
    if (key === '' || /[\s"]/.test(key)) fail(v, 'a comma-separated list of key=value');
    let value: string;
    try {
      value = decodeURIComponent(item.slice(eq + 1).trim());
    } catch {
      fail(v, `a URL-encoded value for ${key}`);
    }
    out[key] = value;
  }
  return out;
}

/**
 * A hint when the settings look like a configuration written for PerfCatch's old gRPC-only
 * exporter: OTLP/HTTP sent to 4317, the standard gRPC port, fails on every export.
 */
export function protocolPortHint(s: OtlpExportSettings): string | null {
  if (s.protocol === 'grpc' || new URL(s.url).port !== '4317') return null;
  return `OTLP ${s.signal} go to ${s.url} over http/protobuf (the default), but 4317 is the OTLP/gRPC port: use port 4318, or --otlp-protocol grpc`;
}
