/**
 * Command-line and environment configuration of `perfcatch agent`.
 * Every flag has an environment variable; a flag on the command line wins over the environment.
 */
import { Buffer } from 'node:buffer';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, fail, type RawValue } from './config-error.ts';
import type { LogLevel } from './log.ts';
import { DEFAULT_METRIC_EXPORT_INTERVAL_MS, OTEL_ENVIRONMENT, OTLP_PROTOCOLS, DEFAULT_OTLP_PROTOCOL, parseKeyValueList, resolveOtlpExport, type OtlpExportSettings } from './otel/otlp-env.ts';
import { parseSamplerSettings, type SamplerSettings } from './otel/sampler.ts';
import { rejectRepeatedFlag } from './util/repeated-flag.ts';

export { ConfigError } from './config-error.ts';

// The built-ins live with the extractor that applies them; re-exported for the CLI's users.
export { BUILTIN_CORRELATION_HEADERS } from './http/correlation.ts';

const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug'];

export interface AgentConfig {
  /** `--help` was given: print AGENT_USAGE and exit; nothing else was validated. */
  help: boolean;
  apiHost: string;
  apiPort: number;
  /** File holding the bearer token /api/* requires; needed when apiHost is not loopback. */
  apiTokenFile: string | null;
  /** A second listener serving only /metrics and /health (no request data); 0: none. */
  metricsPort: number;
  metricsHost: string;
  /** Empty means no filter of that kind. */
  pids: number[];
  ports: number[];
  processes: string[];
  bufferSize: number;
  /** User-supplied headers, lowercased; CorrelationExtractor checks them before the built-ins. */
  correlationHeaders: string[];
  /** Where spans go (traceExport's URL), for logs and /health; null: span export off. */
  otlpEndpoint: string | null;
  /** Span export: protocol, URL, headers, TLS...; null when off (no endpoint, or OTEL_SDK_DISABLED). */
  traceExport: OtlpExportSettings | null;
  /** OTLP metric export with --otlp-metrics; null otherwise. */
  metricExport: OtlpExportSettings | null;
  /** OTEL_TRACES_SAMPLER(_ARG): which spans are exported (every request is still stored). */
  sampler: SamplerSettings;
  /** OTEL_RESOURCE_ATTRIBUTES: added to every Resource PerfCatch exports. */
  resourceAttributes: Record<string, string>;
  /** OTEL_SERVICE_NAME: service.name of the agent's own telemetry. */
  agentServiceName: string;
  /** OTEL_SDK_DISABLED=true: no OTLP export of any signal. */
  sdkDisabled: boolean;
  captureRequestBytes: number;
  captureResponseBytes: number;
  /** Size of the kernel ring buffer (bytes, a power of two). */
  ringbufBytes: number;
  /** Loader hand-over period (--batch-interval-ms): the latency of records against the agent's CPU. */
  drainIntervalMs: number;
  /** Connections the kernel tracks at once (loader --conn-table-entries). */
  connTableSize: number;
  /** False: query strings are redacted from http_path. */
  keepQuery: boolean;
  loaderPath: string;
  bpfObjectPath: string;
  logLevel: LogLevel;
  /** SQLite file for persistence; null keeps requests in memory only. */
  dbPath: string | null;
  dbRetentionHours: number;
  /** /metrics request series with no request for this long are dropped; 0 keeps them forever. */
  metricsSeriesTtlMinutes: number;
  dbMaxSizeMb: number;
  /** Prometheus remote-write endpoint for per-request samples; null switches it off. */
  remoteWriteUrl: string | null;
  /** Also push the /metrics instruments over OTLP to otlpEndpoint. */
  otlpMetrics: boolean;
  /** OTEL_METRIC_EXPORT_INTERVAL, for the OTLP metrics push. */
  otlpMetricsIntervalMs: number;
  /** This node's name; with it, pods on this node are watched for metadata. */
  nodeName: string | null;
  /** kubeconfig file; null: in-cluster config (or ~/.kube/config). */
  kubeconfig: string | null;
  /** Only these Kubernetes namespaces / pods (enforced in the kernel); empty: all. */
  namespaces: string[];
  podNames: string[];
  /** Scheduling niceness of the agent and its loader: the monitored applications come first. */
  nice: number;
  /** Run under SCHED_IDLE: only CPU time no other task wants. */
  schedIdle: boolean;
  /** Older kernel variants forced on the loader (`--variants`): e.g. "syscall_args=enter_map". */
  kernelVariants: string[];
  /** bpffs directory where the loader pins its maps and links (loader --pin-root); '' = off. */
  bpfPinDir: string;
}

// src/config.ts and dist/config.js both sit one directory below the package root.
const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEFAULT_LOADER_PATH = path.join(PACKAGE_ROOT, 'loader/target/release/perfcatch-loader');
const DEFAULT_BPF_OBJECT_PATH = path.join(PACKAGE_ROOT, 'build/perfcatch.bpf.o');
const DEFAULT_BPF_PIN_DIR = '/sys/fs/bpf/perfcatch';
/** The kernel ring buffer: also the bulk of the loader's RSS (mapped once, loader/src/ring.rs). */
const DEFAULT_RINGBUF_KB = 16_384;
/**
 * How often the loader hands the agent what the kernel recorded (loader --drain-interval-ms).
 * Each hand-over wakes the agent and runs its pipeline on cold caches: at 1,000 req/s the main
 * thread took 30-35 µs per request with 50 ms batches, 20-22 with 250-500 ms, 18-19 with 1 s
 * (test/bench/live-cost.ts). A busy ring is drained every 50 ms regardless
 * (loader/src/pace.rs), and one a quarter full wakes the loader at once.
 */
export const DEFAULT_DRAIN_INTERVAL_MS = 500;
/** enum pc_capture_default in bpf/perfcatch.h (test/unit/layout.test.ts checks): the agent
 * always passes its capture sizes to the loader, so these are the ones in force. */
export const DEFAULT_CAPTURE_REQUEST_BYTES = 4096;
export const DEFAULT_CAPTURE_RESPONSE_BYTES = 512;

interface OptionSpec {
  flag: string;
  /** Environment variables, in order of precedence. */
  env: readonly string[];
  /** Placeholder shown in the usage text; null for a boolean switch. */
  arg: string | null;
  description: string;
  defaultText: string;
}

/** Variants the loader can be told to use instead of the newer ones it probed (loader --variants). */
export const KERNEL_DOWNGRADES = ['syscall_args=enter_map', 'idle_flush=loader_scan'] as const;

const OPTIONS = [
  { flag: '--api-host', env: ['PERFCATCH_API_HOST'], arg: 'HOST', description: 'address the HTTP API listens on', defaultText: '127.0.0.1' },
  { flag: '--api-port', env: ['PERFCATCH_API_PORT'], arg: 'PORT', description: 'port of the HTTP API (0-65535, 0 = any free port)', defaultText: '9090' },
  { flag: '--api-token-file', env: ['PERFCATCH_API_TOKEN_FILE'], arg: 'PATH', description: 'bearer token /api/* requires (needed to bind the API to a non-loopback address: it serves paths, correlation ids and client addresses)', defaultText: 'none' },
  { flag: '--metrics-port', env: ['PERFCATCH_METRICS_PORT'], arg: 'PORT', description: 'also serve /metrics and /health (no request data) on this port, apart from /api/* (0: off)', defaultText: '0' },
  { flag: '--metrics-host', env: ['PERFCATCH_METRICS_HOST'], arg: 'HOST', description: 'address of the --metrics-port listener', defaultText: '0.0.0.0' },
  { flag: '--pids', env: ['PERFCATCH_PIDS'], arg: 'PID,...', description: 'only trace these server processes', defaultText: 'all' },
  { flag: '--ports', env: ['PERFCATCH_PORTS'], arg: 'PORT,...', description: 'only trace connections accepted on these local ports', defaultText: 'all' },
  { flag: '--process', env: ['PERFCATCH_PROCESS'], arg: 'NAME,...', description: 'only trace processes with these command names (at most 15 bytes each)', defaultText: 'all' },
  { flag: '--buffer-size', env: ['PERFCATCH_BUFFER_SIZE'], arg: 'N', description: 'requests kept in memory for /api/requests (1-10000000)', defaultText: '50000' },
  { flag: '--correlation-headers', env: ['PERFCATCH_CORRELATION_HEADERS'], arg: 'NAME,...', description: 'extra correlation-id headers, checked before the built-in ones', defaultText: 'none' },
  { flag: '--otlp-endpoint', env: ['PERFCATCH_OTLP_ENDPOINT'], arg: 'URL', description: 'OTLP endpoint for spans (and metrics with --otlp-metrics), http(s)://host:port[/path]; HTTP appends /v1/traces, /v1/metrics; gRPC also takes host:port. Else the OTEL_EXPORTER_OTLP_*ENDPOINT variables', defaultText: 'none (span export off)' },
  { flag: '--otlp-protocol', env: ['PERFCATCH_OTLP_PROTOCOL'], arg: 'PROTOCOL', description: `${OTLP_PROTOCOLS.join(' | ')}; else the OTEL_EXPORTER_OTLP_*PROTOCOL variables`, defaultText: DEFAULT_OTLP_PROTOCOL },
  { flag: '--capture-request-bytes', env: ['PERFCATCH_CAPTURE_REQUEST_BYTES'], arg: 'N', description: 'request bytes captured for parsing (64-4096)', defaultText: String(DEFAULT_CAPTURE_REQUEST_BYTES) },
  { flag: '--capture-response-bytes', env: ['PERFCATCH_CAPTURE_RESPONSE_BYTES'], arg: 'N', description: 'response bytes captured for parsing (16-4096), only where the kernel could not read a final status line from the response\'s first write', defaultText: String(DEFAULT_CAPTURE_RESPONSE_BYTES) },
  { flag: '--ringbuf-kb', env: ['PERFCATCH_RINGBUF_KB'], arg: 'N', description: 'kernel ring buffer in KiB, a power of two (64-1048576): past half full, payload capture is shed; when full, records are dropped (both counted); the loader maps it, so it is most of the loader RSS', defaultText: String(DEFAULT_RINGBUF_KB) },
  { flag: '--batch-interval-ms', env: ['PERFCATCH_BATCH_INTERVAL_MS'], arg: 'N', description: 'how often the loader hands recorded requests to the agent (10-5000): longer batches cost the agent less CPU per request, and records reach the API, metrics and exporters up to this much later', defaultText: String(DEFAULT_DRAIN_INTERVAL_MS) },
  { flag: '--conn-table-size', env: ['PERFCATCH_CONN_TABLE_SIZE'], arg: 'N', description: 'connections tracked at once (16-4194304, about 330 bytes of kernel memory each): the requests of connections beyond are not recorded, and counted lost (kernel_conn_table_full)', defaultText: '65536' },
  { flag: '--keep-query', env: ['PERFCATCH_KEEP_QUERY'], arg: null, description: 'keep query strings in paths instead of redacting them', defaultText: 'off' },
  { flag: '--loader', env: ['PERFCATCH_LOADER'], arg: 'PATH', description: 'perfcatch-loader executable', defaultText: DEFAULT_LOADER_PATH },
  { flag: '--bpf-object', env: ['PERFCATCH_BPF_OBJECT'], arg: 'PATH', description: 'compiled BPF object', defaultText: DEFAULT_BPF_OBJECT_PATH },
  { flag: '--bpf-pin-dir', env: ['PERFCATCH_BPF_PIN_DIR'], arg: 'PATH', description: 'bpffs directory where the loader pins its maps and links, so a loader that dies loses no capture (see Reliability); off: nothing pinned', defaultText: DEFAULT_BPF_PIN_DIR },
  { flag: '--log-level', env: ['PERFCATCH_LOG_LEVEL'], arg: 'LEVEL', description: LOG_LEVELS.join('|'), defaultText: 'info' },
  { flag: '--db', env: ['PERFCATCH_DB_PATH'], arg: 'PATH', description: 'persist requests to this SQLite file (created with mode 0600); the API then serves history from it', defaultText: 'none (memory only)' },
  { flag: '--metrics-series-ttl-minutes', env: ['PERFCATCH_METRICS_SERIES_TTL_MINUTES'], arg: 'N', description: 'drop /metrics request series unseen this long (0: never; 0-525600)', defaultText: '60' },
  { flag: '--db-retention-hours', env: ['PERFCATCH_DB_RETENTION_HOURS'], arg: 'N', description: 'delete persisted requests older than this (1-87600)', defaultText: '168' },
  { flag: '--db-max-size-mb', env: ['PERFCATCH_DB_MAX_SIZE_MB'], arg: 'N', description: 'delete the oldest persisted requests beyond this size (1-1000000)', defaultText: '1024' },
  { flag: '--otlp-metrics', env: ['PERFCATCH_OTLP_METRICS'], arg: null, description: 'also export metrics over OTLP (to --otlp-endpoint or OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, every OTEL_METRIC_EXPORT_INTERVAL ms)', defaultText: 'off' },
  { flag: '--node-name', env: ['PERFCATCH_NODE_NAME', 'NODE_NAME'], arg: 'NAME', description: 'Kubernetes node this agent runs on (the downward API spec.nodeName): pods on it give requests their namespace, pod and service', defaultText: 'none (no Kubernetes metadata)' },
  { flag: '--namespace', env: ['PERFCATCH_NAMESPACE'], arg: 'NS,...', description: 'only trace pods of these Kubernetes namespaces, enforced in the kernel (needs --node-name)', defaultText: 'all' },
  { flag: '--pods', env: ['PERFCATCH_PODS'], arg: 'POD,...', description: 'only trace these pods, enforced in the kernel (needs --node-name)', defaultText: 'all' },
  { flag: '--kubeconfig', env: ['PERFCATCH_KUBECONFIG', 'KUBECONFIG'], arg: 'PATH', description: 'kubeconfig for the pod watch', defaultText: 'in-cluster' },
  { flag: '--nice', env: ['PERFCATCH_NICE'], arg: 'N', description: 'nice value of the agent and loader (0-19), used with --sched-idle=false', defaultText: '10' },
  { flag: '--sched-idle', env: ['PERFCATCH_SCHED_IDLE'], arg: null, description: 'run the agent and loader under SCHED_IDLE (on by default; =false to use --nice): they only use CPU the applications leave, and what they cannot keep up with is shed and counted', defaultText: 'on' },
  { flag: '--kernel-variants', env: ['PERFCATCH_KERNEL_VARIANTS'], arg: 'LIST', description: `use older kernels' variants although this kernel has newer features: ${KERNEL_DOWNGRADES.join(', ')} (tests; a way around a misbehaving newer path)`, defaultText: 'none (probed)' },
  { flag: '--remote-write-url', env: ['PERFCATCH_REMOTE_WRITE_URL'], arg: 'URL', description: 'Prometheus remote-write endpoint for per-request samples (VictoriaMetrics, Mimir)', defaultText: 'none' },
] as const satisfies readonly OptionSpec[];

type Flag = (typeof OPTIONS)[number]['flag'];

/** The flags and their variables, for the README's table (rows come from here, not by hand). */
export const AGENT_OPTIONS: readonly OptionSpec[] = OPTIONS;

export const AGENT_USAGE = [
  'Usage: perfcatch agent [options]',
  '',
  'Options (each can also be set by the environment variable shown; the flag wins):',
  ...OPTIONS.flatMap((o) => [
    `  ${o.flag}${o.arg === null ? '' : ` ${o.arg}`}`,
    `      ${o.description}`,
    `      env: ${o.env.join(', then ')}; default: ${o.defaultText}`,
  ]),
  '  --help, -h',
  '      show this help',
  '',
  'Standard OpenTelemetry environment (read as the SDKs read it; the flags above win):',
  ...OTEL_ENVIRONMENT.flatMap((v) => [`  ${v.name}`, `      ${v.description}`, `      default: ${v.defaultText}`]),
].join('\n');

export function parseAgentArgs(argv: string[], env: Record<string, string | undefined>): AgentConfig {
  // Help wins over everything, so a broken environment cannot hide the usage text.
  if (argv.includes('--help') || argv.includes('-h')) return { ...defaultConfig(), help: true };
  const flags = readFlags(argv);

  const raw = (flag: Flag): RawValue | undefined => {
    const fromFlag = flags.get(flag);
    if (fromFlag !== undefined) return { source: flag, text: fromFlag };
    const spec = OPTIONS.find((o) => o.flag === flag)!;
    for (const name of spec.env) {
      const text = env[name];
      // An empty variable is treated as unset, as shells make `VAR=` easy to leave behind.
      if (text !== undefined && text !== '') return { source: name, text };
    }
    return undefined;
  };
  const orDefault = <T>(value: RawValue | undefined, parse: (v: RawValue) => T, fallback: T): T =>
    value === undefined ? fallback : parse(value);

  const config: AgentConfig = {
    help: false,
    apiHost: orDefault(raw('--api-host'), parseHost, '127.0.0.1'),
    apiPort: orDefault(raw('--api-port'), (v) => parseInteger(v, 0, 65535), 9090),
    apiTokenFile: orDefault(raw('--api-token-file'), parsePath, null),
    metricsPort: orDefault(raw('--metrics-port'), (v) => parseInteger(v, 0, 65535), 0),
    metricsHost: orDefault(raw('--metrics-host'), parseHost, '0.0.0.0'),
    pids: orDefault(raw('--pids'), (v) => parseIntegerList(v, 1, 2 ** 31 - 1, 'positive integers'), []),
    ports: orDefault(raw('--ports'), (v) => parseIntegerList(v, 1, 65535, 'ports 1-65535'), []),
    processes: orDefault(raw('--process'), parseCommList, []),
    bufferSize: orDefault(raw('--buffer-size'), (v) => parseInteger(v, 1, 10_000_000), 50_000),
    correlationHeaders: orDefault(raw('--correlation-headers'), parseHeaderList, []),
    otlpEndpoint: null,
    traceExport: null,
    metricExport: null,
    sampler: parseSamplerSettings(env),
    resourceAttributes: orDefault(standardVariable(env, 'OTEL_RESOURCE_ATTRIBUTES'), parseKeyValueList, {}),
    agentServiceName: 'perfcatch-agent',
    sdkDisabled: orDefault(standardVariable(env, 'OTEL_SDK_DISABLED'), parseStandardBoolean, false),
    captureRequestBytes: orDefault(raw('--capture-request-bytes'), (v) => parseInteger(v, 64, 4096), DEFAULT_CAPTURE_REQUEST_BYTES),
    captureResponseBytes: orDefault(raw('--capture-response-bytes'), (v) => parseInteger(v, 16, 4096), DEFAULT_CAPTURE_RESPONSE_BYTES),
    ringbufBytes: orDefault(raw('--ringbuf-kb'), parseRingbufKb, DEFAULT_RINGBUF_KB * 1024),
    drainIntervalMs: orDefault(raw('--batch-interval-ms'), (v) => parseInteger(v, 10, 5_000), DEFAULT_DRAIN_INTERVAL_MS),
    connTableSize: orDefault(raw('--conn-table-size'), (v) => parseInteger(v, 16, 1 << 22), 65_536),
    keepQuery: orDefault(raw('--keep-query'), parseBoolean, false),
    loaderPath: orDefault(raw('--loader'), parsePath, DEFAULT_LOADER_PATH),
    bpfObjectPath: orDefault(raw('--bpf-object'), parsePath, DEFAULT_BPF_OBJECT_PATH),
    bpfPinDir: orDefault(raw('--bpf-pin-dir'), (v) => (v.text.trim() === 'off' ? '' : parsePath(v)), DEFAULT_BPF_PIN_DIR),
    logLevel: orDefault(raw('--log-level'), parseLogLevel, 'info'),
    dbPath: orDefault(raw('--db'), parsePath, null),
    dbRetentionHours: orDefault(raw('--db-retention-hours'), (v) => parseInteger(v, 1, 87_600), 168),
    metricsSeriesTtlMinutes: orDefault(raw('--metrics-series-ttl-minutes'), (v) => parseInteger(v, 0, 525_600), 60),
    dbMaxSizeMb: orDefault(raw('--db-max-size-mb'), (v) => parseInteger(v, 1, 1_000_000), 1024),
    remoteWriteUrl: orDefault(raw('--remote-write-url'), parseHttpUrl, null),
    otlpMetrics: orDefault(raw('--otlp-metrics'), parseBoolean, false),
    nodeName: null,
    kubeconfig: null,
    namespaces: [],
    podNames: [],
    nice: orDefault(raw('--nice'), (v) => parseInteger(v, 0, 19), 10),
    schedIdle: orDefault(raw('--sched-idle'), parseBoolean, true),
    kernelVariants: orDefault(raw('--kernel-variants'), parseKernelVariants, []),
    otlpMetricsIntervalMs: orDefault(
      env.OTEL_METRIC_EXPORT_INTERVAL ? { source: 'OTEL_METRIC_EXPORT_INTERVAL', text: env.OTEL_METRIC_EXPORT_INTERVAL } : undefined,
      (v) => parseInteger(v, 100, 3_600_000),
      DEFAULT_METRIC_EXPORT_INTERVAL_MS,
    ),
  };
  config.nodeName = orDefault(raw('--node-name'), (v) => v.text.trim() || fail(v, 'a node name'), null);
  config.kubeconfig = orDefault(raw('--kubeconfig'), parsePath, null);
  config.namespaces = orDefault(raw('--namespace'), (v) => splitList(v, 'a comma-separated list of namespaces'), []);
  config.podNames = orDefault(raw('--pods'), (v) => splitList(v, 'a comma-separated list of pod names'), []);
  if ((config.namespaces.length || config.podNames.length) && !config.nodeName) {
    throw new ConfigError('--namespace/--pods: need --node-name (NODE_NAME) to know which pods run here');
  }
  // As the SDKs: OTEL_SERVICE_NAME wins over a service.name in OTEL_RESOURCE_ATTRIBUTES.
  config.agentServiceName = env.OTEL_SERVICE_NAME?.trim() || config.resourceAttributes['service.name'] || 'perfcatch-agent';
  if (!config.sdkDisabled) {
    const overrides = { endpoint: raw('--otlp-endpoint'), protocol: raw('--otlp-protocol') };
    config.traceExport = resolveOtlpExport('traces', overrides, env);
    config.otlpEndpoint = config.traceExport?.url ?? null;
    if (config.otlpMetrics) {
      config.metricExport = resolveOtlpExport('metrics', overrides, env);
      if (!config.metricExport) {
        throw new ConfigError('--otlp-metrics: needs an OTLP endpoint (--otlp-endpoint, OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)');
      }
    }
  }
  if (!isLoopback(config.apiHost) && config.apiTokenFile === null) {
    throw new ConfigError(
      `--api-host ${config.apiHost}: the API serves request paths, correlation ids and client addresses; ` +
        'a non-loopback address needs --api-token-file (PERFCATCH_API_TOKEN_FILE). ' +
        '/metrics and /health alone can be served with --metrics-port',
    );
  }
  return config;
}

function parseKernelVariants(v: RawValue): string[] {
  const items = splitList(v, `a comma-separated list of ${KERNEL_DOWNGRADES.join(', ')}`);
  for (const item of items) {
    if (!(KERNEL_DOWNGRADES as readonly string[]).includes(item)) fail(v, `one or more of ${KERNEL_DOWNGRADES.join(', ')}`);
  }
  return items;
}

function parseHttpUrl(v: RawValue): string {
  const expected = 'an http(s):// URL';
  let url: URL;
  try {
    url = new URL(v.text.trim());
  } catch {
    fail(v, expected);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail(v, expected);
  return url.toString();
}

function defaultConfig(): AgentConfig {
  return parseAgentArgs([], {});
}

/** Splits argv into flag -> raw text; a flag given twice is an error, as for the query commands. */
function readFlags(argv: string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    const eq = token.indexOf('=');
    const name = eq === -1 ? token : token.slice(0, eq);
    const spec = OPTIONS.find((o) => o.flag === name);
    if (spec === undefined) {
      throw new ConfigError(`${JSON.stringify(token)}: unknown option (see perfcatch agent --help)`);
    }
    rejectRepeatedFlag(name, flags.has(name), (message) => new ConfigError(message));
    if (eq !== -1) {
      flags.set(name, token.slice(eq + 1));
    } else if (spec.arg === null) {
      flags.set(name, 'true');
    } else {
      const next = argv[i + 1];
      // A following flag means the value was forgotten, not that the value starts with "--".
      if (next === undefined || next.startsWith('--')) {
        throw new ConfigError(`${name}: expected a value (${spec.arg})`);
      }
      flags.set(name, next);
      i++;
    }
  }
  return flags;
}

/** A standard OTEL_* variable that is set and not blank. */
function standardVariable(env: Record<string, string | undefined>, name: string): RawValue | undefined {
  const text = env[name];
  return text !== undefined && text.trim() !== '' ? { source: name, text } : undefined;
}

/** The specification's booleans: true or false, case-insensitive. */
function parseStandardBoolean(v: RawValue): boolean {
  const text = v.text.trim().toLowerCase();
  if (text === 'true') return true;
  if (text === 'false') return false;
  return fail(v, 'true or false');
}

function toInteger(text: string, min: number, max: number): number | undefined {
  if (!/^\d{1,10}$/.test(text)) return undefined;
  const n = Number(text);
  return n >= min && n <= max ? n : undefined;
}

function parseInteger(v: RawValue, min: number, max: number): number {
  return toInteger(v.text.trim(), min, max) ?? fail(v, `an integer ${min}-${max}`);
}

/** KiB -> bytes; the kernel wants a power-of-two number of pages. */
function parseRingbufKb(v: RawValue): number {
  const kb = parseInteger(v, 64, 1 << 20);
  if ((kb & (kb - 1)) !== 0) fail(v, 'a power of two (64-1048576)');
  return kb * 1024;
}

/** Splits a comma list; blank items are an error rather than silently skipped. */
function splitList(v: RawValue, expected: string): string[] {
  const items = v.text.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) fail(v, expected);
  return items;
}

function parseIntegerList(v: RawValue, min: number, max: number, what: string): number[] {
  const expected = `a comma-separated list of ${what}`;
  const values = splitList(v, expected).map((s) => toInteger(s, min, max) ?? fail(v, expected));
  return [...new Set(values)];
}

function parseCommList(v: RawValue): string[] {
  // The kernel's comm is 16 bytes including the terminating NUL.
  const expected = 'a comma-separated list of process names of at most 15 bytes';
  const names = splitList(v, expected);
  if (names.some((s) => Buffer.byteLength(s, 'utf8') > 15)) fail(v, expected);
  return [...new Set(names)];
}

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

/** Credentials must never become a correlation ID: it is stored, exported and labelled. */
const SECRET_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie']);

function parseHeaderList(v: RawValue): string[] {
  const expected = 'a comma-separated list of HTTP header names';
  const names = splitList(v, expected).map((s) => s.toLowerCase());
  if (!names.every((s) => HEADER_NAME.test(s))) fail(v, expected);
  const secret = names.find((s) => SECRET_HEADERS.has(s));
  if (secret) fail(v, `header names other than ${secret} (credentials are never captured)`);
  return [...new Set(names)];
}

/** 127.0.0.0/8, ::1 and localhost: only this host can connect. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

function parseHost(v: RawValue): string {
  const host = v.text.trim();
  if (host === '' || /\s/.test(host)) fail(v, 'a host name or IP address');
  return host;
}

function parseBoolean(v: RawValue): boolean {
  const text = v.text.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(text)) return true;
  if (['0', 'false', 'no', 'off'].includes(text)) return false;
  return fail(v, 'true or false');
}

function parsePath(v: RawValue): string {
  if (v.text.trim() === '') fail(v, 'a file path');
  return path.resolve(v.text);
}

function parseLogLevel(v: RawValue): LogLevel {
  const level = LOG_LEVELS.find((l) => l === v.text.trim().toLowerCase());
  return level ?? fail(v, `one of ${LOG_LEVELS.join(', ')}`);
}
