/**
 * Per-service summaries of several agents combined into one, for `--cluster`.
 *
 * Counts, errors, bytes and last seen add up exactly. Percentiles do not: the p95 of a service
 * served on two nodes is not any mix of the two nodes' p95s. So each agent gives the requests of
 * the window themselves (their duration and CPU) when one query returns them all, and a service
 * whose agents all did gets its percentiles computed over the union: exact. An agent that held
 * more requests than one query returns gives only its own summaries; a service it serves with
 * other agents then gets, per percentile, the largest of the agents' values: an upper bound (the
 * merged p-th percentile lies between the smallest and the largest of the parts'), flagged
 * percentiles_exact: false.
 */
import { busiestFirst, summarizeServices, type Percentiles, type ServiceSummary, type SummaryInput } from '../store/service-summary.ts';

/** What one agent answered: every request of the window, or only its summaries. */
export type AgentServices = { requests: SummaryInput[] } | { summaries: ServiceSummary[] };

export interface ClusterServiceSummary extends ServiceSummary {
  /** Agents that served the service in the window. */
  agents: number;
  /** false: the percentiles are upper bounds (see the file comment). */
  percentiles_exact: boolean;
}

interface ServiceParts {
  /** The service's requests from every agent, or null once one agent gave only a summary. */
  requests: SummaryInput[] | null;
  summaries: ServiceSummary[];
}

export function mergeServices(parts: readonly AgentServices[]): ClusterServiceSummary[] {
  const byService = new Map<string, ServiceParts>();
  for (const part of parts) {
    const requests = 'requests' in part ? groupByService(part.requests) : null;
    const summaries = 'requests' in part ? summarizeServices(part.requests) : part.summaries;
    for (const summary of summaries) {
      let entry = byService.get(summary.service_name);
      if (entry === undefined) byService.set(summary.service_name, (entry = { requests: [], summaries: [] }));
      entry.summaries.push(summary);
      if (requests === null) entry.requests = null;
      else entry.requests = entry.requests?.concat(requests.get(summary.service_name) ?? []) ?? null;
    }
  }
  const merged = [...byService.values()].map(({ requests, summaries }): ClusterServiceSummary => {
    if (requests !== null) return { ...summarizeServices(requests)[0]!, agents: summaries.length, percentiles_exact: true };
    return { ...combine(summaries), agents: summaries.length, percentiles_exact: summaries.length === 1 };
  });
  return merged.sort(busiestFirst);
}

/** True when a summary came from mergeServices with percentiles that are upper bounds. */
export function percentilesAreBounds(summary: ServiceSummary): boolean {
  return (summary as Partial<ClusterServiceSummary>).percentiles_exact === false;
}

function groupByService(requests: readonly SummaryInput[]): Map<string, SummaryInput[]> {
  const out = new Map<string, SummaryInput[]>();
  for (const r of requests) {
    const list = out.get(r.service_name);
    if (list === undefined) out.set(r.service_name, [r]);
    else list.push(r);
  }
  return out;
}

/** The sums and, per percentile, the largest value of one service's summaries. */
function combine(summaries: readonly ServiceSummary[]): ServiceSummary {
  const sum = (f: (s: ServiceSummary) => number) => summaries.reduce((n, s) => n + f(s), 0);
  const largest = (f: (s: ServiceSummary) => Percentiles): Percentiles => ({
    p50: Math.max(...summaries.map((s) => f(s).p50)),
    p95: Math.max(...summaries.map((s) => f(s).p95)),
    p99: Math.max(...summaries.map((s) => f(s).p99)),
  });
  const count = sum((s) => s.count);
  const errors = sum((s) => s.errors);
  return {
    service_name: summaries[0]!.service_name,
    process_names: [...new Set(summaries.flatMap((s) => s.process_names))].sort(),
    count,
    errors,
    error_rate: count === 0 ? 0 : errors / count,
    duration_ms: largest((s) => s.duration_ms),
    cpu_time_ms: largest((s) => s.cpu_time_ms),
    bytes_received: sum((s) => s.bytes_received),
    bytes_sent: sum((s) => s.bytes_sent),
    last_seen: Math.max(...summaries.map((s) => s.last_seen)),
  };
}
