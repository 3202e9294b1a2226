import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AGENT_USAGE, BUILTIN_CORRELATION_HEADERS, ConfigError, parseAgentArgs } from '../../src/config.ts';

const PACKAGE_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Asserts a ConfigError with a single-line message matching `pattern`. */
function assertConfigError(argv: string[], env: Record<string, string>, pattern: RegExp): void {
  assert.throws(
    () => parseAgentArgs(argv, env),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
      assert.ok(!err.message.includes('\n'), `message must be one line: ${err.message}`);
      assert.match(err.message, pattern);
      return true;
    },
  );
}

describe('parseAgentArgs', () => {
  it('has documented defaults', () => {
    const c = parseAgentArgs([], {});
    assert.deepEqual(c, {
      help: false,
      apiHost: '127.0.0.1',
      apiPort: 9090,
      pids: [],
      ports: [],
      processes: [],
      bufferSize: 50000,
      correlationHeaders: [],
      otlpEndpoint: null,
      traceExport: null,
      metricExport: null,
      sampler: { name: 'always_on', ratio: 1 },
      resourceAttributes: {},
      agentServiceName: 'perfcatch-agent',
      sdkDisabled: false,
      captureRequestBytes: 4096,
      captureResponseBytes: 512,
      ringbufBytes: 16 << 20,
      drainIntervalMs: 500,
      connTableSize: 65536,
      keepQuery: false,
      loaderPath: path.join(PACKAGE_ROOT, 'loader/target/release/perfcatch-loader'),
      bpfObjectPath: path.join(PACKAGE_ROOT, 'build/perfcatch.bpf.o'),
      logLevel: 'info',
      dbPath: null,
      dbRetentionHours: 168,
      metricsSeriesTtlMinutes: 60,
      apiTokenFile: null,
      metricsPort: 0,
      metricsHost: '0.0.0.0',
      dbMaxSizeMb: 1024,
      remoteWriteUrl: null,
      otlpMetrics: false,
      otlpMetricsIntervalMs: 10000,
      nodeName: null,
      kubeconfig: null,
      namespaces: [],
      podNames: [],
      nice: 10,
      schedIdle: true,
      kernelVariants: [],
      bpfPinDir: '/sys/fs/bpf/perfcatch',
    });
  });

  it('reads the storage and remote-write flags, and refuses bad ones', () => {
    const c = parseAgentArgs(['--db', '/var/lib/perfcatch/requests.db', '--db-retention-hours=24', '--db-max-size-mb', '50'], {
      PERFCATCH_REMOTE_WRITE_URL: 'http://vm:8428/api/v1/write',
    });
    assert.equal(c.dbPath, '/var/lib/perfcatch/requests.db');
    assert.equal(c.dbRetentionHours, 24);
    assert.equal(c.dbMaxSizeMb, 50);
    assert.equal(c.remoteWriteUrl, 'http://vm:8428/api/v1/write');
    assert.throws(() => parseAgentArgs(['--remote-write-url', 'ftp://x'], {}), /--remote-write-url: expected an http/);
    assert.throws(() => parseAgentArgs(['--db-retention-hours', '0'], {}), /--db-retention-hours/);
  });

  it('exports the built-in correlation headers in order', () => {
    assert.deepEqual(BUILTIN_CORRELATION_HEADERS, [
      'x-correlation-id', 'x-request-id', 'x-trace-id', 'traceparent', 'x-amzn-trace-id', 'request-id', 'correlation-id',
    ]);
  });

  it('a non-loopback API needs a token file (issue 13, finding 4); loopback does not', () => {
    assertConfigError(['--api-host', '0.0.0.0'], {}, /^--api-host 0\.0\.0\.0: the API serves request paths.*--api-token-file/);
    assertConfigError([], { PERFCATCH_API_HOST: '10.1.2.3' }, /needs --api-token-file/);
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1']) assert.equal(parseAgentArgs(['--api-host', host], {}).apiHost, host);
    const c = parseAgentArgs(['--metrics-port', '9091'], { PERFCATCH_API_HOST: '0.0.0.0', PERFCATCH_API_TOKEN_FILE: 't' });
    assert.equal(c.metricsPort, 9091);
    assert.equal(c.metricsHost, '0.0.0.0');
  });

  it('accepts --flag value and --flag=value', () => {
    const c = parseAgentArgs(
      ['--api-port', '8080', '--api-host=0.0.0.0', '--api-token-file', '/run/secrets/token', '--pids', '12,34', '--ports=80, 443', '--process', 'nginx,node',
        '--buffer-size', '10', '--capture-request-bytes=64', '--capture-response-bytes', '16', '--keep-query', '--batch-interval-ms', '2000',
        '--loader', 'rel/loader', '--bpf-object=/abs/x.o', '--log-level', 'debug'],
      {},
    );
    assert.equal(c.apiPort, 8080);
    assert.equal(c.apiHost, '0.0.0.0');
    assert.equal(c.apiTokenFile, '/run/secrets/token');
    assert.deepEqual(c.pids, [12, 34]);
    assert.deepEqual(c.ports, [80, 443]);
    assert.deepEqual(c.processes, ['nginx', 'node']);
    assert.equal(c.bufferSize, 10);
    assert.equal(c.captureRequestBytes, 64);
    assert.equal(c.captureResponseBytes, 16);
    assert.equal(c.keepQuery, true);
    assert.equal(c.drainIntervalMs, 2000);
    assert.equal(c.loaderPath, path.resolve('rel/loader'));
    assert.equal(c.bpfObjectPath, '/abs/x.o');
    assert.equal(c.logLevel, 'debug');
  });

  it('reads every setting from the environment', () => {
    const c = parseAgentArgs([], {
      PERFCATCH_API_PORT: '0',
      PERFCATCH_API_HOST: '::1',
      PERFCATCH_PIDS: '7',
      PERFCATCH_PORTS: '65535',
      PERFCATCH_PROCESS: 'python3',
      PERFCATCH_BUFFER_SIZE: '10000000',
      PERFCATCH_CORRELATION_HEADERS: 'X-My-Id',
      PERFCATCH_OTLP_ENDPOINT: 'collector:4317',
      PERFCATCH_OTLP_PROTOCOL: 'grpc',
      PERFCATCH_CAPTURE_REQUEST_BYTES: '100',
      PERFCATCH_CAPTURE_RESPONSE_BYTES: '4096',
      PERFCATCH_KEEP_QUERY: 'true',
      PERFCATCH_LOADER: '/opt/loader',
      PERFCATCH_BPF_OBJECT: '/opt/x.o',
      PERFCATCH_LOG_LEVEL: 'warn',
    });
    assert.equal(c.apiPort, 0);
    assert.equal(c.apiHost, '::1');
    assert.deepEqual(c.pids, [7]);
    assert.deepEqual(c.ports, [65535]);
    assert.deepEqual(c.processes, ['python3']);
    assert.equal(c.bufferSize, 10_000_000);
    assert.deepEqual(c.correlationHeaders, ['x-my-id']);
    assert.equal(c.otlpEndpoint, 'https://collector:4317');
    assert.equal(c.traceExport?.protocol, 'grpc');
    assert.equal(c.captureRequestBytes, 100);
    assert.equal(c.captureResponseBytes, 4096);
    assert.equal(c.keepQuery, true);
    assert.equal(c.loaderPath, '/opt/loader');
    assert.equal(c.bpfObjectPath, '/opt/x.o');
    assert.equal(c.logLevel, 'warn');
  });

  it('lets the flag win over the environment, and ignores empty variables', () => {
    const env = { PERFCATCH_API_PORT: 'not-a-port', PERFCATCH_LOG_LEVEL: 'warn', PERFCATCH_PIDS: '' };
    const c = parseAgentArgs(['--api-port', '1234'], env);
    assert.equal(c.apiPort, 1234);
    assert.equal(c.logLevel, 'warn');
    assert.deepEqual(c.pids, []);
  });

  it('lowercases and dedupes user correlation headers', () => {
    const c = parseAgentArgs(['--correlation-headers', 'X-Tenant-Trace, X-Request-Id,x-tenant-trace'], {});
    assert.deepEqual(c.correlationHeaders, ['x-tenant-trace', 'x-request-id']);
  });

  describe('OTLP endpoint (the per-variable tables are in otlp-env.test.ts)', () => {
    it('falls back through the OpenTelemetry variables; the flag is a general endpoint', () => {
      const base = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://base:4318' };
      assert.equal(parseAgentArgs([], base).otlpEndpoint, 'http://base:4318/v1/traces');
      const traces = { ...base, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://traces:4318/custom' };
      assert.equal(parseAgentArgs([], traces).otlpEndpoint, 'https://traces:4318/custom');
      const own = { ...traces, PERFCATCH_OTLP_ENDPOINT: 'http://own:4318' };
      assert.equal(parseAgentArgs([], own).otlpEndpoint, 'http://own:4318/v1/traces');
      assert.equal(parseAgentArgs(['--otlp-endpoint', 'http://flag:1'], own).otlpEndpoint, 'http://flag:1/v1/traces');
      assert.equal(parseAgentArgs(['--otlp-endpoint', 'http://flag:1', '--otlp-protocol', 'grpc'], own).otlpEndpoint, 'http://flag:1');
    });

    it('accepts host:port only for gRPC, and says so', () => {
      assert.equal(parseAgentArgs(['--otlp-endpoint', 'collector:4317', '--otlp-protocol', 'grpc'], {}).otlpEndpoint, 'https://collector:4317');
      assertConfigError(['--otlp-endpoint', 'collector:4317'], {}, /^--otlp-endpoint: expected an http:\/\/ or https:\/\/ URL for OTLP\/HTTP \(host:port alone is for --otlp-protocol grpc\)/);
    });

    it('rejects anything else', () => {
      for (const bad of ['collector', 'grpc://collector:4317', 'http://', 'host:port', 'http://user:pw@h:1', 'http://h:1/?x=1', 'a b:1']) {
        assertConfigError(['--otlp-endpoint', bad], {}, /^--otlp-endpoint: expected (an http|a URL)/);
        assertConfigError(['--otlp-endpoint', bad, '--otlp-protocol', 'grpc'], {}, /^--otlp-endpoint: expected a URL/);
      }
      assertConfigError([], { OTEL_EXPORTER_OTLP_ENDPOINT: 'nope' }, /^OTEL_EXPORTER_OTLP_ENDPOINT: expected an http.*got "nope"$/);
      assertConfigError(['--otlp-protocol', 'thrift'], { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }, /^--otlp-protocol: expected one of http\/protobuf, grpc, got "thrift"$/);
    });

    it('OTEL_SDK_DISABLED switches every OTLP export off, and nothing else', () => {
      const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'TRUE' };
      const c = parseAgentArgs(['--otlp-metrics', '--api-port', '1'], env);
      assert.equal(c.sdkDisabled, true);
      assert.equal(c.traceExport, null);
      assert.equal(c.metricExport, null);
      assert.equal(c.otlpEndpoint, null);
      assert.equal(c.apiPort, 1);
      assert.equal(parseAgentArgs([], { ...env, OTEL_SDK_DISABLED: 'false' }).otlpEndpoint, 'http://c:4318/v1/traces');
      assertConfigError([], { OTEL_SDK_DISABLED: 'yes' }, /^OTEL_SDK_DISABLED: expected true or false, got "yes"$/);
    });

    it('OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME', () => {
      const attrs = { OTEL_RESOURCE_ATTRIBUTES: 'k8s.cluster.name=prod-eu, deployment.environment.name=prod,team=a%20b' };
      const c = parseAgentArgs([], attrs);
      assert.deepEqual(c.resourceAttributes, { 'k8s.cluster.name': 'prod-eu', 'deployment.environment.name': 'prod', team: 'a b' });
      assert.equal(c.agentServiceName, 'perfcatch-agent');
      assert.equal(parseAgentArgs([], { OTEL_RESOURCE_ATTRIBUTES: 'service.name=from-attrs' }).agentServiceName, 'from-attrs');
      assert.equal(parseAgentArgs([], { OTEL_RESOURCE_ATTRIBUTES: 'service.name=from-attrs', OTEL_SERVICE_NAME: 'agent-eu' }).agentServiceName, 'agent-eu');
      assertConfigError([], { OTEL_RESOURCE_ATTRIBUTES: 'novalue' }, /^OTEL_RESOURCE_ATTRIBUTES: expected a comma-separated list of key=value/);
      assertConfigError([], { OTEL_RESOURCE_ATTRIBUTES: 'k=%zz' }, /^OTEL_RESOURCE_ATTRIBUTES: expected a URL-encoded value for k/);
    });
  });

  describe('errors', () => {
    it('names the flag and the expected value', () => {
      assertConfigError(['--api-port', 'abc'], {}, /^--api-port: expected an integer 0-65535, got "abc"$/);
      assertConfigError(['--api-port=65536'], {}, /^--api-port: expected an integer 0-65535, got "65536"$/);
      assertConfigError(['--api-port', '-1'], {}, /^--api-port: expected an integer 0-65535, got "-1"$/);
      assertConfigError(['--api-port=-1'], {}, /^--api-port: expected an integer 0-65535, got "-1"$/);
      assertConfigError(['--api-port', '1e3'], {}, /^--api-port: expected an integer/);
      assertConfigError(['--buffer-size', '0'], {}, /^--buffer-size: expected an integer 1-10000000/);
      assertConfigError(['--buffer-size', '10000001'], {}, /^--buffer-size:/);
      assertConfigError(['--capture-request-bytes', '63'], {}, /^--capture-request-bytes: expected an integer 64-4096/);
      assertConfigError(['--capture-response-bytes', '4097'], {}, /^--capture-response-bytes: expected an integer 16-4096/);
      assertConfigError(['--ringbuf-kb', '100'], {}, /^--ringbuf-kb: expected a power of two/);
      assertConfigError(['--ringbuf-kb', '32'], {}, /^--ringbuf-kb: expected an integer 64-1048576/);
      assertConfigError(['--batch-interval-ms', '5'], {}, /^--batch-interval-ms: expected an integer 10-5000/);
      assertConfigError(['--pids', '1,x'], {}, /^--pids: expected a comma-separated list of positive integers, got "1,x"$/);
      assertConfigError(['--pids', '0'], {}, /^--pids:/);
      assertConfigError(['--pids', '1,,2'], {}, /^--pids:/);
      assertConfigError(['--ports', '0'], {}, /^--ports: expected a comma-separated list of ports 1-65535/);
      assertConfigError(['--ports', '70000'], {}, /^--ports:/);
      assertConfigError(['--process', 'a-very-long-name'], {}, /^--process: expected .*at most 15 bytes/);
      assertConfigError(['--process', 'ééééééééé'], {}, /^--process:/); // 18 bytes in 9 characters
      assertConfigError(['--correlation-headers', 'bad header'], {}, /^--correlation-headers: expected/);
      assertConfigError(['--keep-query=maybe'], {}, /^--keep-query: expected true or false/);
      assertConfigError(['--log-level', 'trace'], {}, /^--log-level: expected one of error, warn, info, debug, got "trace"$/);
      assertConfigError(['--api-host='], {}, /^--api-host: expected a host name/);
      assertConfigError(['--loader='], {}, /^--loader: expected a file path/);
    });

    it('names the environment variable when the value came from there', () => {
      assertConfigError([], { PERFCATCH_API_PORT: 'abc' }, /^PERFCATCH_API_PORT: expected an integer 0-65535, got "abc"$/);
      assertConfigError([], { PERFCATCH_KEEP_QUERY: 'sure' }, /^PERFCATCH_KEEP_QUERY: expected true or false/);
    });

    it('rejects unknown flags and missing values', () => {
      assertConfigError(['--api-prot', '1'], {}, /^"--api-prot": unknown option/);
      assertConfigError(['extra'], {}, /^"extra": unknown option/);
      assertConfigError(['--api-port'], {}, /^--api-port: expected a value \(PORT\)$/);
      assertConfigError(['--pids', '--ports', '80'], {}, /^--pids: expected a value/);
    });
  });

  it('accepts boolean spellings for --keep-query', () => {
    assert.equal(parseAgentArgs(['--keep-query=false'], {}).keepQuery, false);
    assert.equal(parseAgentArgs([], { PERFCATCH_KEEP_QUERY: '1' }).keepQuery, true);
    assert.equal(parseAgentArgs([], { PERFCATCH_KEEP_QUERY: 'no' }).keepQuery, false);
  });

  it('lets --help win over invalid settings', () => {
    const c = parseAgentArgs(['--api-port', 'abc', '--help'], { PERFCATCH_BUFFER_SIZE: 'x' });
    assert.equal(c.help, true);
    assert.equal(parseAgentArgs(['-h'], {}).help, true);
  });
});

describe('AGENT_USAGE', () => {
  it('lists every flag with its environment variable', () => {
    const flags = ['--api-port', '--api-host', '--pids', '--ports', '--process', '--buffer-size', '--correlation-headers',
      '--otlp-endpoint', '--otlp-protocol', '--capture-request-bytes', '--capture-response-bytes', '--ringbuf-kb', '--keep-query', '--loader', '--bpf-object',
      '--batch-interval-ms', '--log-level', '--help'];
    for (const flag of flags) assert.ok(AGENT_USAGE.includes(flag), flag);
    for (const flag of flags.filter((f) => f !== '--help')) {
      const env = `PERFCATCH_${flag.slice(2).toUpperCase().replaceAll('-', '_')}`;
      assert.ok(AGENT_USAGE.includes(env), env);
    }
    for (const name of ['ENDPOINT', 'PROTOCOL', 'HEADERS', 'TIMEOUT', 'COMPRESSION', 'CERTIFICATE', 'CLIENT_CERTIFICATE', 'CLIENT_KEY', 'INSECURE']) {
      assert.ok(AGENT_USAGE.includes(`OTEL_EXPORTER_OTLP_{,TRACES_,METRICS_}${name}\n`), name);
    }
    for (const name of ['OTEL_RESOURCE_ATTRIBUTES', 'OTEL_SERVICE_NAME', 'OTEL_SDK_DISABLED', 'OTEL_TRACES_SAMPLER', 'OTEL_TRACES_SAMPLER_ARG', 'OTEL_METRIC_EXPORT_INTERVAL']) {
      assert.ok(AGENT_USAGE.includes(`  ${name}\n`), name);
    }
    assert.ok(AGENT_USAGE.includes('default: 9090'));
  });
});

describe('secrets', () => {
  it('refuses credential headers as correlation headers', () => {
    for (const h of ['Authorization', 'cookie', 'x-id,Set-Cookie', 'proxy-authorization']) {
      assert.throws(() => parseAgentArgs(['--correlation-headers', h], {}), (err: Error) => err instanceof ConfigError && /credentials/.test(err.message));
    }
  });
});

describe('--otlp-metrics', () => {
  it('needs an OTLP endpoint, and takes the interval from OTEL_METRIC_EXPORT_INTERVAL', () => {
    assert.throws(() => parseAgentArgs(['--otlp-metrics'], {}), (err: Error) => err instanceof ConfigError && /needs an OTLP endpoint/.test(err.message));
    const c = parseAgentArgs(['--otlp-metrics', '--otlp-endpoint', 'http://collector:4318'], { OTEL_METRIC_EXPORT_INTERVAL: '2500' });
    assert.equal(c.otlpMetrics, true);
    assert.equal(c.metricExport?.url, 'http://collector:4318/v1/metrics');
    // A metrics-only endpoint is enough; spans then stay off.
    const metricsOnly = parseAgentArgs(['--otlp-metrics'], { OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://m:4318/in' });
    assert.equal(metricsOnly.metricExport?.url, 'http://m:4318/in');
    assert.equal(metricsOnly.traceExport, null);
    assert.equal(c.otlpMetricsIntervalMs, 2500);
    assert.throws(() => parseAgentArgs([], { OTEL_METRIC_EXPORT_INTERVAL: 'soon' }), /OTEL_METRIC_EXPORT_INTERVAL/);
  });
});

describe('--namespace and --pods', () => {
  it('need a node name', () => {
    assert.throws(() => parseAgentArgs(['--namespace', 'shop'], {}), /need --node-name/);
    const c = parseAgentArgs(['--namespace', 'shop,web', '--pods=a'], { NODE_NAME: 'node-a' });
    assert.deepEqual([c.namespaces, c.podNames, c.nodeName], [['shop', 'web'], ['a'], 'node-a']);
  });
});
