/** `perfcatch detail <request_id>`: one request and its outbound calls as a tree. */
import { CliError, UsageError } from './args.ts';
import { type Command } from './context.ts';
import { CLUSTER_FLAGS, CLUSTER_USAGE } from './cluster-options.ts';
import { formatBytes, formatMs, formatTime, renderFields, renderJson, renderTree, type ColorName, type Paint } from './format.ts';
import type { DependencyRecord, RequestRecord } from '../types.ts';

export const DETAIL: Command = {
  name: 'detail',
  summary: 'one request in full, with its outbound calls as a tree',
  usage: `Usage: perfcatch detail <request_id> [options]

One request: method, path, status, service, pid, duration, on-CPU time, RSS, bytes,
correlation id, trace/span ids, and the outbound calls it made while being served.
Exits 1 if there is no request with that id.
${CLUSTER_USAGE}`,
  flags: { ...CLUSTER_FLAGS },
  positionals: 1,
  async run(ctx) {
    const id = ctx.args.positionals[0];
    if (id === undefined || id === '') throw new UsageError('detail: needs a request id (see perfcatch detail --help)');
    const record = await (await ctx.source()).request(id);
    if (record === null) throw new CliError(`no request with id ${JSON.stringify(id)} (it may be older than the agent keeps)`);
    ctx.write(ctx.json ? renderJson(record) : renderDetail(record, ctx.paint));
    return 0;
  },
};

export function statusColor(status: number | null): ColorName | undefined {
  if (status === null) return undefined;
  if (status >= 500) return 'red';
  if (status >= 400) return 'yellow';
  return 'green';
}

function paintStatus(status: number | null, paint: Paint): string {
  const color = statusColor(status);
  const text = status === null ? '-' : String(status);
  return color ? paint(color, text) : text;
}

export function renderDetail(r: RequestRecord, paint: Paint): string {
  const fields: [string, string][] = [
    ['request id', r.request_id],
    ['service', `${r.service_name} (process ${r.process_name}, pid ${r.pid})`],
  ];
  if (r.namespace !== null || r.pod_name !== null) fields.push(['kubernetes', `${r.namespace ?? '-'}/${r.pod_name ?? '-'}`]);
  fields.push(
    ['started', formatTime(r.timestamp)],
    ['duration', `${formatMs(r.duration_ms)} ms`],
    ['cpu', `${formatMs(r.cpu_time_ms)} ms`],
    ['rss', formatBytes(r.memory_rss_bytes)],
    ['bytes', `in ${formatBytes(r.bytes_received)}, out ${formatBytes(r.bytes_sent)}`],
    ['client', `${r.remote_ip}:${r.remote_port} → local port ${r.local_port}`],
    ['route', r.route ?? '-'],
    ['correlation', r.correlation_id ?? '-'],
    ['trace id', r.trace_id],
    ['span id', r.span_id],
    ['parent span', r.parent_span_id ?? '-'],
  );
  let out = `${paint('bold', `${r.http_method ?? '-'} ${r.http_path ?? '-'}`)}  ${paintStatus(r.http_status, paint)}\n`;
  out += renderFields(fields, paint);
  if (r.dependencies.length === 0) return out + 'dependencies: none\n';
  out += `dependencies (${r.dependencies.length}):\n`;
  return out + renderTree(r.dependencies.map((d) => dependencyLine(d, paint)), '  ');
}

export function dependencyLine(d: DependencyRecord, paint: Paint): string {
  const call = d.http_method === null && d.http_path === null ? 'connection' : `${d.http_method ?? '-'} ${d.http_path ?? '-'}`;
  const peer = d.peer_ip.includes(':') ? `[${d.peer_ip}]:${d.peer_port}` : `${d.peer_ip}:${d.peer_port}`;
  const conn = d.new_connection ? `new connection${d.connect_ms !== null ? ` (connect ${formatMs(d.connect_ms)} ms)` : ''}` : 'pooled';
  return `${call} → ${peer} ${paintStatus(d.http_status, paint)}, ${formatMs(d.duration_ms)} ms, sent ${formatBytes(d.bytes_sent)} / received ${formatBytes(d.bytes_received)}, ${conn}`;
}
