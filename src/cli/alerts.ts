/** `perfcatch alerts`: requests above a duration or CPU threshold; exit 1 when there are any. */
import { numberFlag, stringFlag, UsageError } from './args.ts';
import { PROCESS_FLAG, SINCE_FLAG, type Command } from './context.ts';
import { renderJson, renderTable, requestSummary } from './format.ts';
import { REQUEST_COLUMNS, requestRow } from './request-rows.ts';
import { MAX_QUERY_LIMIT } from './sources.ts';
import type { RequestQuery } from '../store/request-reader.ts';
import type { RequestRecord } from '../types.ts';

export const ALERTS_DEFAULT_SINCE = 5;
/** Rows of the human table; --json lists every breach. */
const MAX_ROWS = 50;

export const ALERTS: Command = {
  name: 'alerts',
  summary: 'requests above a duration or CPU threshold; exit 1 if any',
  usage: `Usage: perfcatch alerts --threshold-duration MS --threshold-cpu MS [--since MIN] [--process NAME] [options]

Prints the requests of the last MIN minutes whose duration or on-CPU time is above a
threshold (at least one threshold is required). Exit status: 1 when any request is above
a threshold, 0 when none is, 2 for a bad command line.

Options:
  --threshold-duration MS   duration threshold in milliseconds
  --threshold-cpu MS        on-CPU time threshold in milliseconds
  --since MIN               time window in minutes (default ${ALERTS_DEFAULT_SINCE})
  --process NAME            only requests served by this service or process name
`,
  flags: {
    'threshold-duration': { kind: 'number', min: 0 },
    'threshold-cpu': { kind: 'number', min: 0 },
    since: SINCE_FLAG,
    process: PROCESS_FLAG,
  },
  positionals: 0,
  async run(ctx) {
    const durationMs = numberFlag(ctx.args, 'threshold-duration');
    const cpuMs = numberFlag(ctx.args, 'threshold-cpu');
    if (durationMs === undefined && cpuMs === undefined) {
      throw new UsageError('alerts: give --threshold-duration MS, --threshold-cpu MS, or both');
    }
    const since = numberFlag(ctx.args, 'since') ?? ALERTS_DEFAULT_SINCE;
    const process = stringFlag(ctx.args, 'process');
    const source = await ctx.source();
    const base: RequestQuery = { since_minutes: since, limit: MAX_QUERY_LIMIT, ...(process !== undefined ? { process } : {}) };

    // Duration filters at the source, so that check is complete however busy the window;
    // CPU is checked over the newest MAX_QUERY_LIMIT requests.
    const found = new Map<string, RequestRecord>();
    let truncated = false;
    if (durationMs !== undefined) {
      const list = await source.requests({ ...base, min_duration_ms: durationMs });
      truncated ||= list.length >= MAX_QUERY_LIMIT;
      for (const r of list) if (r.duration_ms > durationMs) found.set(r.request_id, r);
    }
    if (cpuMs !== undefined) {
      const list = await source.requests(base);
      truncated ||= list.length >= MAX_QUERY_LIMIT;
      for (const r of list) if (r.cpu_time_ms > cpuMs) found.set(r.request_id, r);
    }
    const breaches = [...found.values()].sort((a, b) => b.timestamp - a.timestamp);
    const exceeded = (r: RequestRecord) => [
      ...(durationMs !== undefined && r.duration_ms > durationMs ? ['duration_ms'] : []),
      ...(cpuMs !== undefined && r.cpu_time_ms > cpuMs ? ['cpu_time_ms'] : []),
    ];
    const code = breaches.length > 0 ? 1 : 0;

    if (ctx.json) {
      ctx.write(
        renderJson({
          breached: breaches.length > 0,
          since_minutes: since,
          process: process ?? null,
          thresholds: { duration_ms: durationMs ?? null, cpu_time_ms: cpuMs ?? null },
          truncated,
          count: breaches.length,
          requests: breaches.map((r) => ({
            ...requestSummary(r),
            process_name: r.process_name,
            correlation_id: r.correlation_id,
            exceeded: exceeded(r),
          })),
        }),
      );
      return code;
    }

    const limits = [
      ...(durationMs !== undefined ? [`duration > ${durationMs} ms`] : []),
      ...(cpuMs !== undefined ? [`cpu > ${cpuMs} ms`] : []),
    ].join(' or ');
    let out = '';
    if (breaches.length > 0) {
      const rows = breaches.slice(0, MAX_ROWS).map((r) => {
        const over = exceeded(r);
        return requestRow(r, { duration: over.includes('duration_ms'), cpu: over.includes('cpu_time_ms') });
      });
      out += renderTable(REQUEST_COLUMNS, rows, ctx.paint);
      if (breaches.length > MAX_ROWS) out += ctx.paint('dim', `… and ${breaches.length - MAX_ROWS} more (--json lists all)`) + '\n';
      out += ctx.paint('red', `ALERT: ${breaches.length} request${breaches.length === 1 ? '' : 's'} above threshold (${limits}) in the last ${since} min`) + '\n';
    } else {
      out += ctx.paint('green', `OK: no request above threshold (${limits}) in the last ${since} min`) + '\n';
    }
    if (truncated) out += ctx.paint('dim', `note: only the newest ${MAX_QUERY_LIMIT} requests of the window were checked`) + '\n';
    ctx.write(out);
    return code;
  },
};
