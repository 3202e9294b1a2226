/** `perfcatch report`: per-service latency, CPU, bytes and errors. */
import { stringFlag, numberFlag } from './args.ts';
import { PROCESS_FLAG, SINCE_FLAG, type Command } from './context.ts';
import { CLUSTER_FLAGS, CLUSTER_USAGE } from './cluster-options.ts';
import { formatBytes, formatMs, formatPercent, renderJson, renderTable, type Cell, type Column } from './format.ts';
import type { ServiceSummary } from '../store/service-summary.ts';
import type { Paint } from './format.ts';
import { percentilesAreBounds } from './merge-services.ts';
import { MAX_QUERY_LIMIT } from './sources.ts';

export const REPORT_DEFAULT_SINCE = 60;

export const REPORT: Command = {
  name: 'report',
  summary: 'per-service request count, duration and CPU percentiles, bytes, errors',
  usage: `Usage: perfcatch report [--since MIN] [--process NAME] [options]

Per-service table of the requests that started in the last MIN minutes: count,
p50/p95/p99 duration and on-CPU time (ms), bytes in/out, 5xx errors.

Options:
  --since MIN      time window in minutes (default ${REPORT_DEFAULT_SINCE})
  --process NAME   only services with this service or process name
${CLUSTER_USAGE}`,
  flags: { since: SINCE_FLAG, process: PROCESS_FLAG, ...CLUSTER_FLAGS },
  positionals: 0,
  async run(ctx) {
    const since = numberFlag(ctx.args, 'since') ?? REPORT_DEFAULT_SINCE;
    const process = stringFlag(ctx.args, 'process');
    const source = await ctx.source();
    let services = await source.services(since);
    if (process !== undefined) services = services.filter((s) => s.service_name === process || s.process_names.includes(process));
    if (ctx.json) {
      ctx.write(renderJson({ since_minutes: since, process: process ?? null, count: services.length, services }));
      return 0;
    }
    ctx.write(renderReport(services, since, ctx.paint));
    return 0;
  },
};

const COLUMNS: Column[] = [
  { header: 'SERVICE', maxWidth: 40 },
  { header: 'COUNT', align: 'right' },
  { header: 'P50 MS', align: 'right' },
  { header: 'P95 MS', align: 'right' },
  { header: 'P99 MS', align: 'right' },
  { header: 'CPU P50', align: 'right' },
  { header: 'CPU P95', align: 'right' },
  { header: 'CPU P99', align: 'right' },
  { header: 'IN', align: 'right' },
  { header: 'OUT', align: 'right' },
  { header: 'ERRORS', align: 'right' },
];

export function renderReport(services: readonly ServiceSummary[], sinceMinutes: number, paint: Paint): string {
  if (services.length === 0) return `no requests in the last ${sinceMinutes} min\n`;
  const rows: Cell[][] = services.map((s) => {
    // A cluster-wide percentile that is only an upper bound (merge-services.ts) says so.
    const ms = (value: number) => (percentilesAreBounds(s) ? '≤' : '') + formatMs(value);
    const { duration_ms: d, cpu_time_ms: c } = s;
    return [
      s.service_name,
      String(s.count),
      ...[d.p50, d.p95, d.p99, c.p50, c.p95, c.p99].map(ms),
      formatBytes(s.bytes_received),
      formatBytes(s.bytes_sent),
      { text: `${s.errors} (${formatPercent(s.error_rate)})`, color: s.errors > 0 ? 'red' : undefined },
    ];
  });
  const total = services.reduce((n, s) => n + s.count, 0);
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  return (
    renderTable(COLUMNS, rows, paint) +
    paint('dim', `${plural(services.length, 'service')}, ${plural(total, 'request')} in the last ${sinceMinutes} min; durations and CPU in ms, errors are 5xx`) +
    '\n' +
    (services.some(percentilesAreBounds)
      ? paint('dim', `≤: an upper bound: an agent serving it had ${MAX_QUERY_LIMIT} or more requests in the window, too many to merge one by one, so the agents' percentiles were merged as their largest`) + '\n'
      : '')
  );
}
