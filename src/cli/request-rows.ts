/** The table rows of request listings (`requests`, `alerts`): one line per request. */
import { statusColor } from './detail.ts';
import { formatMs, formatTime, type Cell, type Column } from './format.ts';
import type { RequestRecord } from '../types.ts';

export const REQUEST_COLUMNS: readonly Column[] = [
  { header: 'TIME' },
  { header: 'SERVICE', maxWidth: 30 },
  { header: 'REQUEST', maxWidth: 50 },
  { header: 'STATUS', align: 'right' },
  { header: 'DUR MS', align: 'right' },
  { header: 'CPU MS', align: 'right' },
  { header: 'ID' },
];

/** The cells of REQUEST_COLUMNS; `over` names the measures to show in red. */
export function requestRow(r: RequestRecord, over: { duration?: boolean; cpu?: boolean } = {}): Cell[] {
  return [
    formatTime(r.timestamp),
    r.service_name,
    `${r.http_method ?? '-'} ${r.http_path ?? '-'}`,
    { text: r.http_status === null ? '-' : String(r.http_status), color: statusColor(r.http_status) },
    { text: formatMs(r.duration_ms), color: over.duration ? 'red' : undefined },
    { text: formatMs(r.cpu_time_ms), color: over.cpu ? 'red' : undefined },
    r.request_id,
  ];
}
