/** `perfcatch requests`: the newest requests matching filters (the API's /api/requests). */
import { numberFlag, stringFlag } from './args.ts';
import { PROCESS_FLAG, SINCE_FLAG, type Command } from './context.ts';
import { CLUSTER_FLAGS, CLUSTER_USAGE } from './cluster-options.ts';
import { renderJson, renderTable } from './format.ts';
import { REQUEST_COLUMNS, requestRow } from './request-rows.ts';
import { MAX_QUERY_LIMIT } from './sources.ts';
import type { RequestQuery } from '../store/request-reader.ts';

export const REQUESTS_DEFAULT_SINCE = 60;
export const REQUESTS_DEFAULT_LIMIT = 50;

export const REQUESTS: Command = {
  name: 'requests',
  summary: 'the newest requests, filtered by correlation id, pod, path, status, duration',
  usage: `Usage: perfcatch requests [filters] [--since MIN] [--limit N] [options]

The newest requests of the last MIN minutes that match every filter given, newest first.

Options:
  --correlation-id ID   only requests with this correlation id
  --process NAME        only requests served by this service or process name
  --namespace NS        only requests served by pods of this Kubernetes namespace
  --pod NAME            only requests served by this pod
  --method METHOD       only this HTTP method
  --path PATH           only this exact path
  --status CODE         only this HTTP status
  --min-duration MS     only requests that took at least MS milliseconds
  --since MIN           time window in minutes (default ${REQUESTS_DEFAULT_SINCE})
  --limit N             at most N requests (default ${REQUESTS_DEFAULT_LIMIT}, at most ${MAX_QUERY_LIMIT})
${CLUSTER_USAGE}`,
  flags: {
    'correlation-id': { kind: 'string' },
    process: PROCESS_FLAG,
    namespace: { kind: 'string' },
    pod: { kind: 'string' },
    method: { kind: 'string' },
    path: { kind: 'string' },
    status: { kind: 'integer', min: 100, max: 599 },
    'min-duration': { kind: 'number', min: 0 },
    since: SINCE_FLAG,
    limit: { kind: 'integer', min: 1, max: MAX_QUERY_LIMIT },
    ...CLUSTER_FLAGS,
  },
  positionals: 0,
  async run(ctx) {
    const since = numberFlag(ctx.args, 'since') ?? REQUESTS_DEFAULT_SINCE;
    const query: RequestQuery = { since_minutes: since, limit: numberFlag(ctx.args, 'limit') ?? REQUESTS_DEFAULT_LIMIT };
    const text = (flag: string, key: 'correlation_id' | 'process' | 'namespace' | 'pod' | 'method' | 'path') => {
      const value = stringFlag(ctx.args, flag);
      if (value !== undefined) query[key] = value;
    };
    text('correlation-id', 'correlation_id');
    text('process', 'process');
    text('namespace', 'namespace');
    text('pod', 'pod');
    text('method', 'method');
    text('path', 'path');
    const status = numberFlag(ctx.args, 'status');
    if (status !== undefined) query.status = status;
    const minDuration = numberFlag(ctx.args, 'min-duration');
    if (minDuration !== undefined) query.min_duration_ms = minDuration;

    const requests = await (await ctx.source()).requests(query);
    if (ctx.json) {
      ctx.write(renderJson({ since_minutes: since, count: requests.length, requests }));
      return 0;
    }
    if (requests.length === 0) {
      ctx.write(`no matching requests in the last ${since} min\n`);
      return 0;
    }
    const columns = [...REQUEST_COLUMNS, { header: 'POD', maxWidth: 40 }, { header: 'CORRELATION', maxWidth: 40 }];
    const rows = requests.map((r) => [...requestRow(r), r.pod_name === null ? '-' : `${r.namespace ?? '-'}/${r.pod_name}`, r.correlation_id ?? '-']);
    ctx.write(renderTable(columns, rows, ctx.paint));
    if (requests.length === query.limit) ctx.write(ctx.paint('dim', `the newest ${query.limit}; --limit shows more`) + '\n');
    return 0;
  },
};
