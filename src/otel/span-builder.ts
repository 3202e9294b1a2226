/**
 * Builds one SERVER span per request, as a finished ReadableSpan handed straight to the
 * export queue: the request is already over when the kernel reports it, so there is no live
 * span to start and end, and ids and times come from the record itself.
 *
 * Every monitored service gets its own Resource object; the OTLP serializer groups spans
 * by resource object, so spans of different services go out under their own service.name
 * through one shared exporter.
 */
import { SpanKind, SpanStatusCode, TraceFlags, type Attributes, type HrTime, type SpanContext } from '@opentelemetry/api';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { hostname } from 'node:os';
import { k8sResourceAttributes } from '../k8s/pod-metadata.ts';
import type { PodMetadata } from '../k8s/pod-index.ts';
import type { BuiltDependency } from '../pipeline/dependency-builder.ts';
import type { BuiltRequest } from '../pipeline/request-builder.ts';
import type { RequestRecord } from '../types.ts';
import { routeTemplate } from '../http/route.ts';
import * as sc from './semconv.ts';

export const INSTRUMENTATION_SCOPE = { name: 'perfcatch', version: '0.1.0' } as const;

const MAX_RESOURCES = 1024;

export function hrTimeFromEpochNs(ns: bigint): HrTime {
  return [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)];
}

/** Fields every finished span shares. */
function finishedSpan(
  fields: Pick<ReadableSpan, 'name' | 'kind' | 'attributes' | 'status' | 'resource' | 'parentSpanContext'>,
  ctx: SpanContext,
  startNs: bigint,
  endNs: bigint,
): ReadableSpan {
  const end = endNs >= startNs ? endNs : startNs;
  return {
    ...fields,
    spanContext: () => ctx,
    startTime: hrTimeFromEpochNs(startNs),
    endTime: hrTimeFromEpochNs(end),
    duration: hrTimeFromEpochNs(end - startNs),
    links: [],
    events: [],
    ended: true,
    instrumentationScope: INSTRUMENTATION_SCOPE,
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
  };
}

/** Builds the SERVER span of each request and the CLIENT spans of its dependencies. */
export class SpanBuilder {
  private readonly resources = new Map<string, Resource>();
  private readonly host = hostname();

  /**
   * One Resource per service instance: service, process and (on Kubernetes) pod. A CLIENT span
   * reported late knows its parent's pod only by name: it finds the resource already made.
   */
  resourceFor(serviceName: string, processName: string, pod: PodMetadata | null, podName: string | null = pod?.podName ?? null): Resource {
    const key = `${serviceName}\0${processName}\0${podName ?? ''}`;
    let r = this.resources.get(key);
    if (!r) {
      if (this.resources.size >= MAX_RESOURCES) this.resources.clear();
      r = resourceFromAttributes({
        ...(pod ? k8sResourceAttributes(pod) : {}),
        // The record's service name already chose between the process's own name and the pod's.
        [sc.ATTR_SERVICE_NAME]: serviceName,
        [sc.ATTR_PROCESS_EXECUTABLE_NAME]: processName,
        [sc.ATTR_HOST_NAME]: this.host,
        [sc.ATTR_TELEMETRY_SDK_NAME]: 'perfcatch',
        [sc.ATTR_TELEMETRY_SDK_LANGUAGE]: 'ebpf',
        [sc.ATTR_TELEMETRY_SDK_VERSION]: INSTRUMENTATION_SCOPE.version,
      });
      this.resources.set(key, r);
    }
    return r;
  }

  build(b: BuiltRequest): ReadableSpan {
    const r = b.record;
    const method = r.http_method;
    const route = b.http ? routeTemplate(b.http.path) : null;
    const attributes: Attributes = {
      [sc.ATTR_NETWORK_TRANSPORT]: 'tcp',
      [sc.ATTR_SERVER_PORT]: r.local_port,
      [sc.ATTR_NETWORK_LOCAL_ADDRESS]: b.localAddr,
      [sc.ATTR_NETWORK_LOCAL_PORT]: r.local_port,
      [sc.ATTR_CLIENT_ADDRESS]: r.remote_ip,
      [sc.ATTR_CLIENT_PORT]: r.remote_port,
      [sc.ATTR_NETWORK_PEER_ADDRESS]: r.remote_ip,
      [sc.ATTR_NETWORK_PEER_PORT]: r.remote_port,
      [sc.ATTR_HTTP_REQUEST_SIZE]: r.bytes_received,
      [sc.ATTR_HTTP_RESPONSE_SIZE]: r.bytes_sent,
      [sc.ATTR_PROCESS_PID]: r.pid,
      [sc.ATTR_PERFCATCH_CPU_TIME_NS]: b.cpuNs,
      [sc.ATTR_PERFCATCH_MEMORY_RSS_BYTES]: r.memory_rss_bytes,
      [sc.ATTR_PERFCATCH_REQUEST_ID]: r.request_id,
      [sc.ATTR_PERFCATCH_CONNECTION_REQUEST_SEQ]: b.seq,
    };
    if (b.http) {
      attributes[sc.ATTR_URL_SCHEME] = 'http';
      attributes[sc.ATTR_HTTP_REQUEST_METHOD] = b.http.method;
      attributes[sc.ATTR_URL_PATH] = b.http.path;
      attributes[sc.ATTR_NETWORK_PROTOCOL_VERSION] = b.http.version;
      if (route) attributes[sc.ATTR_PERFCATCH_ROUTE] = route;
      if (b.http.query !== null && r.http_path) attributes[sc.ATTR_URL_QUERY] = r.http_path.slice(b.http.path.length + 1);
      const ua = b.http.headers.get('user-agent');
      if (ua) attributes[sc.ATTR_USER_AGENT_ORIGINAL] = ua.slice(0, 256);
    }
    if (r.http_status !== null) attributes[sc.ATTR_HTTP_RESPONSE_STATUS_CODE] = r.http_status;
    if (r.correlation_id) attributes[sc.ATTR_PERFCATCH_CORRELATION_ID] = r.correlation_id;
    if (b.captureIncomplete) attributes[sc.ATTR_PERFCATCH_CAPTURE_INCOMPLETE] = true;

    // Sampling policy: PerfCatch measured every request, so every span is exported and marked
    // sampled, including children of a traceparent whose sampled flag is 00 (documented).
    const ctx: SpanContext = { traceId: r.trace_id, spanId: r.span_id, traceFlags: TraceFlags.SAMPLED };
    // The parent is an incoming traceparent (remote), or the caller's CLIENT span when the
    // caller runs on this host too (linked by the kernel from the connection's two ends).
    const parent: SpanContext | undefined = r.parent_span_id
      ? {
          traceId: r.trace_id,
          spanId: r.parent_span_id,
          traceFlags: b.traceParent && !b.traceParent.sampled ? TraceFlags.NONE : TraceFlags.SAMPLED,
          isRemote: b.traceParent !== null,
        }
      : undefined;
    const isError = r.http_status !== null && r.http_status >= 500;
    return finishedSpan(
      {
        name: method ? (route ? `${method} ${route}` : method) : 'tcp request',
        kind: SpanKind.SERVER,
        parentSpanContext: parent,
        status: isError ? { code: SpanStatusCode.ERROR } : { code: SpanStatusCode.UNSET },
        attributes,
        resource: this.resourceFor(r.service_name, r.process_name, b.pod),
      },
      ctx,
      b.startNs,
      b.endNs,
    );
  }

  /** A CLIENT span for one outbound exchange, child of its request's SERVER span. */
  buildClient(d: BuiltDependency, parent: RequestRecord): ReadableSpan {
    const r = d.record;
    const attributes: Attributes = {
      [sc.ATTR_SERVER_ADDRESS]: r.peer_ip,
      [sc.ATTR_SERVER_PORT]: r.peer_port,
      [sc.ATTR_NETWORK_PEER_ADDRESS]: r.peer_ip,
      [sc.ATTR_NETWORK_PEER_PORT]: r.peer_port,
      [sc.ATTR_NETWORK_LOCAL_ADDRESS]: d.localAddr,
      [sc.ATTR_NETWORK_LOCAL_PORT]: d.localPort,
      [sc.ATTR_NETWORK_TRANSPORT]: 'tcp',
      [sc.ATTR_HTTP_REQUEST_SIZE]: r.bytes_sent,
      [sc.ATTR_HTTP_RESPONSE_SIZE]: r.bytes_received,
      [sc.ATTR_PERFCATCH_NEW_CONNECTION]: r.new_connection,
    };
    if (r.connect_ms !== null) attributes[sc.ATTR_PERFCATCH_CONNECT_MS] = r.connect_ms;
    let name = `tcp ${r.peer_ip}:${r.peer_port}`;
    if (d.http) {
      const host = d.http.headers.get('host') ?? `${r.peer_ip}:${r.peer_port}`;
      attributes[sc.ATTR_HTTP_REQUEST_METHOD] = d.http.method;
      attributes[sc.ATTR_URL_PATH] = d.http.path;
      attributes[sc.ATTR_URL_FULL] = `http://${host}${r.http_path ?? d.http.path}`;
      attributes[sc.ATTR_NETWORK_PROTOCOL_VERSION] = d.http.version;
      name = `${d.http.method} ${routeTemplate(d.http.path)}`;
    }
    if (r.http_status !== null) attributes[sc.ATTR_HTTP_RESPONSE_STATUS_CODE] = r.http_status;
    const ctx: SpanContext = { traceId: parent.trace_id, spanId: r.span_id, traceFlags: TraceFlags.SAMPLED };
    const parentCtx: SpanContext = { traceId: parent.trace_id, spanId: parent.span_id, traceFlags: TraceFlags.SAMPLED };
    const isError = r.http_status !== null && r.http_status >= 400;
    return finishedSpan(
      {
        name,
        kind: SpanKind.CLIENT,
        parentSpanContext: parentCtx,
        status: isError ? { code: SpanStatusCode.ERROR } : { code: SpanStatusCode.UNSET },
        attributes,
        resource: this.resourceFor(parent.service_name, parent.process_name, null, parent.pod_name),
      },
      ctx,
      d.startNs,
      d.endNs,
    );  }
}
