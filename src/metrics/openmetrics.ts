/**
 * OpenMetrics text (https://prometheus.io/docs/specs/om/open_metrics_spec/) for scrapers that
 * ask for it: the same metrics as the Prometheus text, plus the histogram buckets' exemplars
 * (`# {trace_id="…",span_id="…"} value timestamp`), which the Prometheus 0.0.4 format cannot
 * carry. The SDK's Prometheus serializer writes no exemplars, hence this writer.
 */
import { DataPointType, type MetricData, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { exemplarsOf } from './request-metrics.ts';

export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

/** Whether an Accept header asks for OpenMetrics (Prometheus sends it first when it can). */
export function acceptsOpenMetrics(accept: string | undefined): boolean {
  return accept !== undefined && /application\/openmetrics-text/i.test(accept);
}

/** Metric and label names as the Prometheus serializer makes them: invalid characters become _. */
function sanitizeName(name: string): string {
  return name.replace(/[^a-zA-Z0-9_:]/g, '_').replace(/^([0-9])/, '_$1');
}

function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatNumber(v: number): string {
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  if (Number.isNaN(v)) return 'NaN';
  return String(v);
}

function labels(attributes: Record<string, unknown>, extra?: [string, string]): string {
  const parts = Object.entries(attributes)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${sanitizeName(k)}="${escapeLabelValue(String(v))}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabelValue(extra[1])}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

function writeMetric(m: MetricData, out: string[]): void {
  const name = sanitizeName(m.descriptor.name).replace(/_total$/, '');
  if (m.descriptor.description) out.push(`# HELP ${name} ${m.descriptor.description.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
  switch (m.dataPointType) {
    case DataPointType.SUM: {
      const counter = m.isMonotonic;
      out.push(`# TYPE ${name} ${counter ? 'counter' : 'gauge'}`);
      for (const p of m.dataPoints) out.push(`${name}${counter ? '_total' : ''}${labels(p.attributes)} ${formatNumber(p.value)}`);
      return;
    }
    case DataPointType.GAUGE:
      out.push(`# TYPE ${name} gauge`);
      for (const p of m.dataPoints) out.push(`${name}${labels(p.attributes)} ${formatNumber(p.value)}`);
      return;
    case DataPointType.HISTOGRAM: {
      out.push(`# TYPE ${name} histogram`);
      for (const p of m.dataPoints) {
        const { boundaries, counts } = p.value.buckets;
        // An exemplar per bucket, by the bucket its value falls in (inclusive upper bounds).
        const byBucket = new Map<number, string>();
        for (const e of exemplarsOf(p)) {
          let i = 0;
          while (i < boundaries.length && e.value > boundaries[i]!) i++;
          byBucket.set(i, ` # {trace_id="${e.traceId}",span_id="${e.spanId}"} ${formatNumber(e.value)} ${(e.timeMs / 1000).toFixed(3)}`);
        }
        let cumulative = 0;
        for (let i = 0; i <= boundaries.length; i++) {
          cumulative += counts[i] ?? 0;
          const le = i < boundaries.length ? formatNumber(boundaries[i]!) : '+Inf';
          out.push(`${name}_bucket${labels(p.attributes, ['le', le])} ${cumulative}${byBucket.get(i) ?? ''}`);
        }
        out.push(`${name}_count${labels(p.attributes)} ${p.value.count}`);
        out.push(`${name}_sum${labels(p.attributes)} ${formatNumber(p.value.sum ?? 0)}`);
      }
      return;
    }
    default:
      // Exponential histograms: none are produced by the agent.
      return;
  }
}

export function serializeOpenMetrics(resourceMetrics: ResourceMetrics): string {
  const out: string[] = [];
  for (const scope of resourceMetrics.scopeMetrics) for (const m of scope.metrics) writeMetric(m, out);
  out.push('# EOF');
  return out.join('\n') + '\n';
}
