/** OpenAPI 3.1 description of the agent's HTTP API, served at /api/openapi.json. */
import { DEFAULT_LIMIT, DEFAULT_SINCE_MINUTES } from '../store/request-reader.ts';
import { MAX_LIMIT, MAX_SINCE_MINUTES } from './query-params.ts';

const str = { type: 'string' } as const;
const num = { type: 'number' } as const;
const int = { type: 'integer' } as const;
const nullable = (t: object) => ({ anyOf: [t, { type: 'null' }] });

const queryParam = (name: string, schema: object, description: string) => ({ name, in: 'query', required: false, schema, description });

const since = queryParam('since', { type: 'number', exclusiveMinimum: 0, maximum: MAX_SINCE_MINUTES, default: DEFAULT_SINCE_MINUTES }, 'Only requests that started within this many minutes.');

const error = {
  description: 'A bad parameter',
  content: {
    'application/json': {
      schema: { type: 'object', required: ['error', 'parameter'], properties: { error: str, parameter: str } },
    },
  },
};

const plainError = (description: string) => ({
  description,
  content: { 'application/json': { schema: { type: 'object', required: ['error'], properties: { error: str } } } },
});
/** What every query endpoint may answer besides 200 and 400 (budgets: src/store/query-budget.ts, src/api/load-guard.ts). */
const overBudget = {
  '414': plainError('Request target longer than 4096 characters'),
  '422': plainError('The query ran over its time or row budget: narrow it'),
  '429': plainError('Other queries used the API\'s share of the agent; retry after the Retry-After seconds'),
};

export const OPENAPI = {
  openapi: '3.1.0',
  info: { title: 'PerfCatch agent API', version: '0.1.0', description: 'Per-request cost measured with eBPF: duration, on-CPU time, RSS, bytes, dependencies.' },
  paths: {
    '/api/requests': {
      get: {
        summary: 'Recent requests, newest first',
        parameters: [
          queryParam('process', str, 'Process name or service name (exact).'),
          queryParam('namespace', str, 'Kubernetes namespace (exact).'),
          queryParam('pod', str, 'Kubernetes pod name (exact).'),
          queryParam('correlation_id', str, 'Correlation ID (exact).'),
          queryParam('correlation_id_regex', { type: 'string', maxLength: 200 }, 'Correlation ID (JavaScript regular expression, run by the linear-time engine: no backreferences or lookahead).'),
          queryParam('method', str, 'HTTP method (case-insensitive).'),
          queryParam('path', str, 'HTTP path as reported (query strings redacted unless --keep-query).'),
          queryParam('status', { type: 'integer', minimum: 100, maximum: 599 }, 'HTTP status code.'),
          queryParam('protocol', { type: 'string', enum: ['http/1.0', 'http/1.1', 'h2'] }, 'Protocol of the request.'),
          queryParam('grpc_status', { type: 'integer', minimum: 0 }, 'gRPC status code (gRPC calls only).'),
          queryParam('min_duration_ms', { type: 'number', minimum: 0 }, 'Only requests at least this long.'),
          since,
          queryParam('limit', { type: 'integer', minimum: 1, maximum: MAX_LIMIT, default: DEFAULT_LIMIT }, 'At most this many requests.'),
        ],
        responses: {
          '200': {
            description: 'Matching requests',
            content: {
              'application/json': {
                schema: { type: 'object', required: ['count', 'requests'], properties: { count: int, requests: { type: 'array', items: { $ref: '#/components/schemas/Request' } } } },
              },
            },
          },
          '400': error,
          ...overBudget,
        },
      },
    },
    '/api/requests/{request_id}': {
      get: {
        summary: 'One request with its dependencies and its trace and span ids',
        parameters: [{ name: 'request_id', in: 'path', required: true, schema: str }],
        responses: {
          '200': { description: 'The request', content: { 'application/json': { schema: { $ref: '#/components/schemas/Request' } } } },
          '404': { description: 'Unknown request id', content: { 'application/json': { schema: { type: 'object', properties: { error: str } } } } },
        },
      },
    },
    '/api/services': {
      get: {
        summary: 'Per-service count, error rate, duration and CPU percentiles, bytes',
        parameters: [since],
        responses: {
          '200': {
            description: 'Services, busiest first',
            content: {
              'application/json': {
                schema: { type: 'object', required: ['count', 'services'], properties: { count: int, services: { type: 'array', items: { $ref: '#/components/schemas/Service' } } } },
              },
            },
          },
          '400': error,
          ...overBudget,
        },
      },
    },
    '/health': {
      get: {
        summary: 'Capture status, attached programs and loss counters',
        responses: { '200': { description: 'Capture is up' }, '503': { description: 'Capture is down' } },
      },
    },
    '/metrics': { get: { summary: 'Prometheus metrics', responses: { '200': { description: 'Prometheus text format', content: { 'text/plain': {} } } } } },
    '/api/openapi.json': { get: { summary: 'This document', responses: { '200': { description: 'OpenAPI 3.1', content: { 'application/json': {} } } } } },
  },
  components: {
    schemas: {
      Dependency: {
        type: 'object',
        properties: {
          timestamp: num,
          peer_ip: str,
          peer_port: int,
          new_connection: { type: 'boolean' },
          connect_ms: nullable(num),
          duration_ms: num,
          bytes_sent: int,
          bytes_received: int,
          http_method: nullable(str),
          http_path: nullable(str),
          http_status: nullable(int),
          caller_attribution: { type: 'string', enum: ['exact', 'inferred'] },
          span_id: str,
          protocol: { type: 'string', enum: ['h2'], description: 'Present for one outbound HTTP/2 stream' },
          grpc_status: { ...nullable(int), description: 'An outbound gRPC call\'s grpc-status' },
        },
      },
      Request: {
        type: 'object',
        properties: {
          request_id: str,
          trace_id: str,
          span_id: str,
          parent_span_id: nullable(str),
          timestamp: { type: 'number', description: 'Epoch seconds at the first read of the request' },
          pid: int,
          process_name: str,
          service_name: str,
          namespace: nullable(str),
          pod_name: nullable(str),
          route: nullable(str),
          local_port: int,
          remote_ip: str,
          remote_port: int,
          duration_ms: num,
          cpu_time_ms: num,
          cpu_attribution: { type: 'string', enum: ['exact', 'apportioned', 'unknown'] },
          cpu_after_response_ms: num,
          memory_rss_bytes: int,
          bytes_received: int,
          bytes_sent: int,
          correlation_id: nullable(str),
          http_method: nullable(str),
          http_path: nullable(str),
          http_status: nullable(int),
          protocol: { type: ['string', 'null'], enum: ['http/1.0', 'http/1.1', 'h2', null] },
          grpc_status: nullable(int),
          dependencies: { type: 'array', items: { $ref: '#/components/schemas/Dependency' } },
        },
      },
      Percentiles: { type: 'object', properties: { p50: num, p95: num, p99: num } },
      Service: {
        type: 'object',
        properties: {
          service_name: str,
          process_names: { type: 'array', items: str },
          count: int,
          errors: int,
          error_rate: num,
          duration_ms: { $ref: '#/components/schemas/Percentiles' },
          cpu_time_ms: { $ref: '#/components/schemas/Percentiles' },
          bytes_received: int,
          bytes_sent: int,
          last_seen: num,
        },
      },
    },
  },
} as const;
