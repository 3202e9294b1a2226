/**
 * The standard OTEL_* environment, one table per variable: what each value resolves to for
 * traces and metrics, and which values are refused with a one-line error naming the variable.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/config-error.ts';
import { parseAgentArgs } from '../../src/config.ts';
import { protocolPortHint, resolveOtlpExport, type OtlpExportSettings, type OtlpSignal } from '../../src/otel/otlp-env.ts';
import { parseSamplerSettings, TraceSampler, traceIdBelowRatio } from '../../src/otel/sampler.ts';

type Env = Record<string, string>;
const HTTP = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' };

function resolve(signal: OtlpSignal, env: Env, flags: { endpoint?: string; protocol?: string } = {}): OtlpExportSettings | null {
  return resolveOtlpExport(
    signal,
    {
      endpoint: flags.endpoint === undefined ? undefined : { source: '--otlp-endpoint', text: flags.endpoint },
      protocol: flags.protocol === undefined ? undefined : { source: '--otlp-protocol', text: flags.protocol },
    },
    env,
  );
}

function assertRefused(signal: OtlpSignal, env: Env, pattern: RegExp): void {
  assert.throws(() => resolve(signal, env), (err: unknown) => {
    assert.ok(err instanceof ConfigError, String(err));
    assert.ok(!err.message.includes('\n'));
    assert.match(err.message, pattern);
    return true;
  });
}

describe('OTEL_EXPORTER_OTLP_*ENDPOINT', () => {
  const cases: [string, Env, { endpoint?: string; protocol?: string }, OtlpSignal, string | null][] = [
    ['unset: export off', {}, {}, 'traces', null],
    ['general, HTTP: /v1/traces appended', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }, {}, 'traces', 'http://c:4318/v1/traces'],
    ['general with a trailing slash', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/' }, {}, 'traces', 'http://c:4318/v1/traces'],
    ['general with a path prefix', { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://gw.example/otlp' }, {}, 'metrics', 'https://gw.example/otlp/v1/metrics'],
    ['signal-specific: used as is', { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/custom/traces' }, {}, 'traces', 'http://c:4318/custom/traces'],
    ['signal-specific without a path: the root', { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318' }, {}, 'traces', 'http://c:4318/'],
    ['signal-specific wins over general', { ...HTTP, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t:1/x' }, {}, 'traces', 'http://t:1/x'],
    ['another signal\'s endpoint does not apply', { OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://m:1/x' }, {}, 'traces', null],
    ['blank signal-specific falls back', { ...HTTP, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '  ' }, {}, 'traces', 'http://c:4318/v1/traces'],
    ['--otlp-endpoint is general and wins', { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t:1/x' }, { endpoint: 'http://f:4318' }, 'traces', 'http://f:4318/v1/traces'],
    ['gRPC: never a path', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317/ignored', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, {}, 'traces', 'http://c:4317'],
    ['gRPC, signal-specific', { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://c:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, {}, 'traces', 'https://c:4317'],
    ['gRPC host:port: TLS', { OTEL_EXPORTER_OTLP_ENDPOINT: 'c:4317' }, { protocol: 'grpc' }, 'traces', 'https://c:4317'],
    ['gRPC IPv6 host:port', { OTEL_EXPORTER_OTLP_ENDPOINT: '[::1]:4317' }, { protocol: 'grpc' }, 'traces', 'https://[::1]:4317'],
  ];
  for (const [title, env, flags, signal, url] of cases) {
    it(title, () => assert.equal(resolve(signal, env, flags)?.url ?? null, url));
  }
  it('refuses what is not an endpoint', () => {
    assertRefused('traces', { OTEL_EXPORTER_OTLP_ENDPOINT: 'c:4318' }, /^OTEL_EXPORTER_OTLP_ENDPOINT: expected an http:\/\/ or https:\/\/ URL for OTLP\/HTTP/);
    assertRefused('traces', { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'ftp://c/x' }, /^OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: expected an http/);
    assertRefused('traces', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:1/?q=1' }, /^OTEL_EXPORTER_OTLP_ENDPOINT: expected/);
    assertRefused('traces', { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, /^OTEL_EXPORTER_OTLP_ENDPOINT: expected a URL like http:\/\/collector:4317, or host:port/);
  });
});

describe('OTEL_EXPORTER_OTLP_*PROTOCOL', () => {
  const cases: [string, Env, string | undefined, OtlpSignal, string][] = [
    ['default: http/protobuf', HTTP, undefined, 'traces', 'http/protobuf'],
    ['general', { ...HTTP, OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, undefined, 'traces', 'grpc'],
    ['signal-specific wins', { ...HTTP, OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf' }, undefined, 'traces', 'http/protobuf'],
    ['per signal', { ...HTTP, OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'grpc' }, undefined, 'traces', 'http/protobuf'],
    ['per signal (metrics)', { ...HTTP, OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'grpc' }, undefined, 'metrics', 'grpc'],
    ['--otlp-protocol wins', { ...HTTP, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc' }, 'http/protobuf', 'traces', 'http/protobuf'],
    ['case-insensitive', { ...HTTP, OTEL_EXPORTER_OTLP_PROTOCOL: 'GRPC' }, undefined, 'traces', 'grpc'],
  ];
  for (const [title, env, protocol, signal, expected] of cases) {
    it(title, () => assert.equal(resolve(signal, env, protocol === undefined ? {} : { protocol })?.protocol, expected));
  }
  it('refuses http/json and unknown protocols', () => {
    assertRefused('traces', { ...HTTP, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }, /^OTEL_EXPORTER_OTLP_PROTOCOL: expected http\/protobuf or grpc \(http\/json is not supported/);
    assertRefused('traces', { ...HTTP, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'udp' }, /^OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: expected one of http\/protobuf, grpc, got "udp"$/);
  });
});

describe('OTEL_EXPORTER_OTLP_*HEADERS', () => {
  const cases: [string, Env, OtlpSignal, Record<string, string>][] = [
    ['none', HTTP, 'traces', {}],
    ['general', { ...HTTP, OTEL_EXPORTER_OTLP_HEADERS: 'api-key=k1, x-tenant=t' }, 'traces', { 'api-key': 'k1', 'x-tenant': 't' }],
    ['merged, the signal\'s own win per key', { ...HTTP, OTEL_EXPORTER_OTLP_HEADERS: 'a=1,b=2', OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'b=3' }, 'traces', { a: '1', b: '3' }],
    ['another signal\'s are not sent', { ...HTTP, OTEL_EXPORTER_OTLP_METRICS_HEADERS: 'm=1' }, 'traces', {}],
    ['URL-decoded values', { ...HTTP, OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Basic%20dXNlcjpwdw%3D%3D' }, 'traces', { authorization: 'Basic dXNlcjpwdw==' }],
    ['values may contain =', { ...HTTP, OTEL_EXPORTER_OTLP_HEADERS: 'k=a=b' }, 'traces', { k: 'a=b' }],
    ['empty items skipped', { ...HTTP, OTEL_EXPORTER_OTLP_HEADERS: 'a=1,,' }, 'traces', { a: '1' }],
  ];
  for (const [title, env, signal, expected] of cases) it(title, () => assert.deepEqual(resolve(signal, env)?.headers, expected));
  it('refuses malformed lists', () => {
    assertRefused('traces', { ...HTTP, OTEL_EXPORTER_OTLP_HEADERS: 'novalue' }, /^OTEL_EXPORTER_OTLP_HEADERS: expected a comma-separated list of key=value/);
    assertRefused('traces', { ...HTTP, OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'k=%E0%A4%A' }, /^OTEL_EXPORTER_OTLP_TRACES_HEADERS: expected a URL-encoded value for k/);
  });
});

describe('OTEL_EXPORTER_OTLP_*TIMEOUT', () => {
  const cases: [Env, number][] = [
    [HTTP, 10_000],
    [{ ...HTTP, OTEL_EXPORTER_OTLP_TIMEOUT: '2500' }, 2500],
    [{ ...HTTP, OTEL_EXPORTER_OTLP_TIMEOUT: '2500', OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '700' }, 700],
  ];
  for (const [env, ms] of cases) it(`${JSON.stringify(env)} -> ${ms}`, () => assert.equal(resolve('traces', env)?.timeoutMs, ms));
  it('refuses non-integers and zero', () => {
    for (const bad of ['0', '1.5', 'soon', '-1', '99999999']) assertRefused('traces', { ...HTTP, OTEL_EXPORTER_OTLP_TIMEOUT: bad }, /^OTEL_EXPORTER_OTLP_TIMEOUT: expected milliseconds 1-3600000/);
  });
});

describe('OTEL_EXPORTER_OTLP_*COMPRESSION', () => {
  const cases: [Env, string][] = [
    [HTTP, 'none'],
    [{ ...HTTP, OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip' }, 'gzip'],
    [{ ...HTTP, OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip', OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: 'NONE' }, 'none'],
    [{ ...HTTP, OTEL_EXPORTER_OTLP_COMPRESSION: 'none', OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: 'GZIP' }, 'gzip'],
    [{ ...HTTP, OTEL_EXPORTER_OTLP_METRICS_COMPRESSION: 'gzip' }, 'none'],
  ];
  for (const [env, expected] of cases) it(`${JSON.stringify(env)} -> ${expected}`, () => assert.equal(resolve('traces', env)?.compression, expected));
  it('refuses other algorithms', () => assertRefused('traces', { ...HTTP, OTEL_EXPORTER_OTLP_COMPRESSION: 'zstd' }, /^OTEL_EXPORTER_OTLP_COMPRESSION: expected gzip or none, got "zstd"$/));
});

describe('OTEL_EXPORTER_OTLP_*CERTIFICATE, CLIENT_CERTIFICATE, CLIENT_KEY', () => {
  const dir = mkdtempSync(join(tmpdir(), 'perfcatch-otlp-env-'));
  const file = (name: string) => {
    const p = join(dir, name);
    writeFileSync(p, `-----${name}-----\n`);
    return p;
  };
  const ca = file('ca');
  const tracesCa = file('traces-ca');
  const cert = file('cert');
  const key = file('key');
  const read = (b: Buffer | undefined) => b?.toString().trim();
  it('reads the files, the signal\'s own first', () => {
    const env = { ...HTTP, OTEL_EXPORTER_OTLP_CERTIFICATE: ca, OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE: tracesCa, OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: cert, OTEL_EXPORTER_OTLP_CLIENT_KEY: key };
    const t = resolve('traces', env)!.tls;
    assert.deepEqual([read(t.ca), read(t.cert), read(t.key)], ['-----traces-ca-----', '-----cert-----', '-----key-----']);
    assert.equal(read(resolve('metrics', env)!.tls.ca), '-----ca-----');
    assert.deepEqual(resolve('traces', HTTP)!.tls, {});
  });
  it('refuses a missing file, and a certificate without its key', () => {
    assertRefused('traces', { ...HTTP, OTEL_EXPORTER_OTLP_CERTIFICATE: join(dir, 'missing') }, /^OTEL_EXPORTER_OTLP_CERTIFICATE: cannot read ".*missing": ENOENT$/);
    assertRefused('traces', { ...HTTP, OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: cert }, /set both or neither/);
    assertRefused('traces', { ...HTTP, OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY: key }, /set both or neither/);
  });
});

describe('OTEL_EXPORTER_OTLP_*INSECURE', () => {
  const grpc = (env: Env) => resolve('traces', { OTEL_EXPORTER_OTLP_ENDPOINT: 'c:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', ...env })?.url;
  const cases: [Env, string][] = [
    [{}, 'https://c:4317'],
    [{ OTEL_EXPORTER_OTLP_INSECURE: 'true' }, 'http://c:4317'],
    [{ OTEL_EXPORTER_OTLP_INSECURE: 'TRUE' }, 'http://c:4317'],
    [{ OTEL_EXPORTER_OTLP_INSECURE: 'false' }, 'https://c:4317'],
    [{ OTEL_EXPORTER_OTLP_INSECURE: 'true', OTEL_EXPORTER_OTLP_TRACES_INSECURE: 'false' }, 'https://c:4317'],
  ];
  for (const [env, url] of cases) it(`${JSON.stringify(env)} -> ${url}`, () => assert.equal(grpc(env), url));
  it('has no say over an explicit scheme', () => {
    assert.equal(resolve('traces', { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://c:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_EXPORTER_OTLP_INSECURE: 'true' })?.url, 'https://c:4317');
  });
  it('refuses other values', () => {
    assert.throws(() => grpc({ OTEL_EXPORTER_OTLP_INSECURE: '1' }), /^ConfigError: OTEL_EXPORTER_OTLP_INSECURE: expected true or false, got "1"$/);
  });
});

describe('OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG', () => {
  const cases: [Env, string, number][] = [
    [{}, 'always_on', 1],
    [{ OTEL_TRACES_SAMPLER: 'always_off' }, 'always_off', 1],
    [{ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' }, 'traceidratio', 0.25],
    [{ OTEL_TRACES_SAMPLER: 'traceidratio' }, 'traceidratio', 1],
    [{ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' }, 'parentbased_traceidratio', 0],
    [{ OTEL_TRACES_SAMPLER: 'ParentBased_Always_Off', OTEL_TRACES_SAMPLER_ARG: '0.5' }, 'parentbased_always_off', 1],
  ];
  for (const [env, name, ratio] of cases) it(`${JSON.stringify(env)} -> ${name} ${ratio}`, () => assert.deepEqual(parseSamplerSettings(env), { name, ratio }));
  it('refuses unknown samplers and ratios outside 0-1', () => {
    assert.throws(() => parseSamplerSettings({ OTEL_TRACES_SAMPLER: 'jaeger_remote' }), /^ConfigError: OTEL_TRACES_SAMPLER: expected one of always_on, always_off, traceidratio/);
    for (const bad of ['1.5', '-0.1', 'half', '']) {
      if (bad === '') continue; // blank means unset: ratio 1
      assert.throws(() => parseSamplerSettings({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: bad }), /^ConfigError: OTEL_TRACES_SAMPLER_ARG: expected a ratio from 0 to 1/);
    }
  });
  it('traceidratio compares the lower 64 bits of the trace id', () => {
    assert.equal(traceIdBelowRatio('ffffffffffffffff' + '7fffffffffffffff', 0.5), true);
    assert.equal(traceIdBelowRatio('0000000000000000' + '8000000000000000', 0.5), false);
    assert.equal(traceIdBelowRatio('0000000000000000' + '0000000000000000', 0.000001), true);
    assert.equal(traceIdBelowRatio('00000000000000000000000000000001', 0), false);
    // Over many random ids the kept share is the ratio.
    let kept = 0;
    for (let i = 0; i < 20_000; i++) if (traceIdBelowRatio(Array.from({ length: 32 }, () => Math.floor(Math.random() * 16).toString(16)).join(''), 0.3)) kept++;
    assert.ok(Math.abs(kept / 20_000 - 0.3) < 0.02, String(kept));
  });
  it('parentbased follows a remote parent\'s flag, and the request\'s CLIENT spans follow the request', () => {
    const low = '0'.repeat(32);
    const high = 'f'.repeat(32);
    const s = new TraceSampler({ name: 'parentbased_traceidratio', ratio: 0.5 });
    assert.equal(s.sampleRequest('a1', high, { kind: 'remote', sampled: true }), true);
    assert.equal(s.sampleRequest('a2', low, { kind: 'remote', sampled: false }), false);
    assert.equal(s.sampleRequest('a3', low, { kind: 'none' }), true);
    assert.equal(s.sampleRequest('a4', high, { kind: 'local' }), false);
    assert.deepEqual(['a1', 'a2', 'a3', 'a4'].map((id, i) => s.sampleClient(id, [high, low, low, high][i]!)), [true, false, true, false]);
    const plain = new TraceSampler({ name: 'traceidratio', ratio: 0.5 });
    assert.equal(plain.sampleRequest('b1', high, { kind: 'remote', sampled: true }), false, 'not parent-based: the trace id decides');
  });
});

describe('OTEL_SDK_DISABLED, OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME (read by parseAgentArgs)', () => {
  const cases: [Env, { sdkDisabled: boolean; agentServiceName: string; resourceAttributes: Record<string, string> }][] = [
    [{}, { sdkDisabled: false, agentServiceName: 'perfcatch-agent', resourceAttributes: {} }],
    [{ OTEL_SDK_DISABLED: 'true' }, { sdkDisabled: true, agentServiceName: 'perfcatch-agent', resourceAttributes: {} }],
    [{ OTEL_SDK_DISABLED: 'False' }, { sdkDisabled: false, agentServiceName: 'perfcatch-agent', resourceAttributes: {} }],
    [{ OTEL_SERVICE_NAME: 'agent-eu' }, { sdkDisabled: false, agentServiceName: 'agent-eu', resourceAttributes: {} }],
    [{ OTEL_RESOURCE_ATTRIBUTES: 'k8s.cluster.name=c1' }, { sdkDisabled: false, agentServiceName: 'perfcatch-agent', resourceAttributes: { 'k8s.cluster.name': 'c1' } }],
  ];
  for (const [env, expected] of cases) {
    it(JSON.stringify(env), () => {
      const c = parseAgentArgs([], env);
      assert.deepEqual({ sdkDisabled: c.sdkDisabled, agentServiceName: c.agentServiceName, resourceAttributes: c.resourceAttributes }, expected);
    });
  }
});

describe('protocolPortHint', () => {
  it('flags OTLP/HTTP sent to the gRPC port, and nothing else', () => {
    assert.match(protocolPortHint(resolve('traces', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317' })!)!, /4317 is the OTLP\/gRPC port: use port 4318, or --otlp-protocol grpc/);
    assert.equal(protocolPortHint(resolve('traces', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317' }, { protocol: 'grpc' })!), null);
    assert.equal(protocolPortHint(resolve('traces', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' })!), null);
  });
});
