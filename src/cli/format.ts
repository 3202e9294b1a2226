/** Output helpers of the query commands: units, plain-text tables, optional ANSI colour. */
import type { RequestRecord } from '../types.ts';

export type ColorName = 'bold' | 'dim' | 'red' | 'yellow' | 'green' | 'cyan';

export type Paint = (name: ColorName, text: string) => string;

const CODES: Record<ColorName, [number, number]> = {
  bold: [1, 22],
  dim: [2, 22],
  red: [31, 39],
  yellow: [33, 39],
  green: [32, 39],
  cyan: [36, 39],
};

/** Colour only on a terminal, and never when NO_COLOR is set to anything non-empty. */
export function colorEnabled(stdout: { isTTY?: boolean }, env: Record<string, string | undefined>): boolean {
  return stdout.isTTY === true && !env.NO_COLOR;
}

export function painter(enabled: boolean): Paint {
  if (!enabled) return (_name, text) => text;
  return (name, text) => (text === '' ? text : `\x1b[${CODES[name][0]}m${text}\x1b[${CODES[name][1]}m`);
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

export function stripAnsi(text: string): string {
  return text.replace(ANSI, '');
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 0 B, 999 B, 1.5 KiB, 12.3 MiB, 1.00 GiB: three significant digits above 1 KiB. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '-';
  if (n < 1024) return `${Math.round(n)} B`;
  let v = n;
  let unit = 0;
  while (v >= 1024 && unit < BYTE_UNITS.length - 1) {
    v /= 1024;
    unit++;
  }
  // 1023.95 KiB would print as "1024.0 KiB": move up a unit instead.
  if (v >= 1023.95 && unit < BYTE_UNITS.length - 1) {
    v /= 1024;
    unit++;
  }
  return `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${BYTE_UNITS[unit]}`;
}

/** Milliseconds without a unit: 0.42, 12.3, 1234. */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  const abs = Math.abs(ms);
  return ms.toFixed(abs < 10 ? 2 : abs < 1000 ? 1 : 0);
}

/** A share (0..1) as a percentage: 0%, 0.4%, 12.5%, 100%. */
export function formatPercent(share: number): string {
  if (!Number.isFinite(share)) return '-';
  const pct = share * 100;
  if (pct === 0) return '0%';
  if (pct === 100) return '100%';
  return `${pct.toFixed(1)}%`;
}

/** How long ago, compactly: 3s, 4m, 2h, 5d. */
export function formatAge(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

/** Epoch seconds as an ISO-8601 UTC time with milliseconds. */
export function formatTime(epochSeconds: number): string {
  const d = new Date(epochSeconds * 1000);
  return Number.isNaN(d.getTime()) ? '-' : d.toISOString();
}

/** Shortens to `max` characters, marking the cut with "…". */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  return max <= 1 ? text.slice(0, max) : `${text.slice(0, max - 1)}…`;
}

export interface Column {
  header: string;
  align?: 'left' | 'right';
  /** Longer cells are cut with "…". */
  maxWidth?: number;
}

/** A cell: plain text, or text with a colour applied after padding (so widths stay right). */
export type Cell = string | { text: string; color?: ColorName | undefined };

/**
 * Renders an aligned table: a header row (bold when coloured), then one line per row,
 * columns separated by two spaces, no trailing spaces. Every line ends with "\n".
 */
export function renderTable(columns: readonly Column[], rows: readonly (readonly Cell[])[], paint: Paint): string {
  const texts = rows.map((row) =>
    columns.map((col, i) => {
      const cell = row[i] ?? '';
      const text = typeof cell === 'string' ? cell : cell.text;
      return col.maxWidth === undefined ? text : truncate(text, col.maxWidth);
    }),
  );
  const widths = columns.map((col, i) => Math.max(col.header.length, ...texts.map((t) => t[i]!.length)));
  const line = (cells: string[], colorOf: (i: number) => ColorName | undefined): string => {
    const parts = cells.map((text, i) => {
      const col = columns[i]!;
      const last = i === cells.length - 1;
      const pad = widths[i]! - text.length;
      const padded = col.align === 'right' ? ' '.repeat(pad) + text : last ? text : text + ' '.repeat(pad);
      const color = colorOf(i);
      if (color === undefined) return padded;
      // Colour the text only, not the padding.
      const start = col.align === 'right' ? pad : 0;
      return padded.slice(0, start) + paint(color, text) + padded.slice(start + text.length);
    });
    return parts.join('  ').trimEnd() + '\n';
  };
  let out = line(
    columns.map((c) => c.header),
    () => 'bold',
  );
  rows.forEach((row, r) => {
    out += line(texts[r]!, (i) => {
      const cell = row[i];
      return typeof cell === 'object' ? cell.color : undefined;
    });
  });
  return out;
}

/** "key  value" lines with the keys padded to one width. */
export function renderFields(fields: readonly (readonly [string, string])[], paint: Paint, indent = '  '): string {
  const width = Math.max(0, ...fields.map(([k]) => k.length));
  return fields.map(([k, v]) => `${indent}${paint('dim', k.padEnd(width))}  ${v}`.trimEnd() + '\n').join('');
}

/** Lines of a one-level tree: "├─ a", …, "└─ z". */
export function renderTree(items: readonly string[], indent = ''): string {
  return items.map((item, i) => `${indent}${i === items.length - 1 ? '└─' : '├─'} ${item}\n`).join('');
}

/** Stable, pretty JSON with a trailing newline. */
export function renderJson(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}

/** The fields of a request that `--json` listings print (alerts, top). */
export function requestSummary(r: RequestRecord): Record<string, unknown> {
  return {
    request_id: r.request_id,
    timestamp: r.timestamp,
    service_name: r.service_name,
    pid: r.pid,
    http_method: r.http_method,
    http_path: r.http_path,
    http_status: r.http_status,
    duration_ms: r.duration_ms,
    cpu_time_ms: r.cpu_time_ms,
  };
}
