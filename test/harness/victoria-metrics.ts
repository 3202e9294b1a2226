/**
 * A real VictoriaMetrics (Debian's `victoria-metrics` package, /usr/bin/victoria-metrics) as a
 * Prometheus remote-write receiver: its own free port, a throwaway data directory, 100 years
 * of retention. Read back with /api/v1/export (raw samples, exact values and timestamps) or
 * /api/v1/query. Data is searchable only after a flush, which both readers force first.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from './ports.ts';
import { spawnTracked, type Spawned } from './processes.ts';

export const VICTORIA_METRICS_BIN = '/usr/bin/victoria-metrics';

/** One series as /api/v1/export returns it (one JSON object per line). */
export interface ExportedSeries {
  metric: Record<string, string>;
  values: number[];
  /** Milliseconds since the epoch. */
  timestamps: number[];
}

export interface InstantVector {
  resultType: string;
  result: { metric: Record<string, string>; value: [number, string] }[];
}

export interface RunningVictoriaMetrics extends Spawned {
  /** Base URL, e.g. http://127.0.0.1:34567. */
  url: string;
  /** Prometheus remote-write endpoint. */
  writeUrl: string;
  /** Makes everything written so far searchable. */
  forceFlush(): Promise<void>;
  /** An instant query (`data` of /api/v1/query), at timeSeconds or now. */
  query(promql: string, timeSeconds?: number): Promise<InstantVector>;
  /** Raw samples of every series matching the selector, over all of stored time. */
  exportSeries(match: string): Promise<ExportedSeries[]>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startVictoriaMetrics(): Promise<RunningVictoriaMetrics> {
  if (!existsSync(VICTORIA_METRICS_BIN)) {
    throw new Error(`${VICTORIA_METRICS_BIN} not found: apt-get install victoria-metrics (scripts/setup.sh)`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'perfcatch-vm-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const s = spawnTracked(VICTORIA_METRICS_BIN, [
    '-httpListenAddr', `127.0.0.1:${port}`,
    '-storageDataPath', dir,
    '-retentionPeriod', '100y',
    '-loggerLevel', 'WARN',
  ]);
  void s.exited.then(() => rmSync(dir, { recursive: true, force: true }));

  try {
    await waitFor(
      'victoria-metrics /health',
      async () => {
        if (s.child.exitCode !== null) throw new Error(`victoria-metrics exited ${s.child.exitCode}: ${s.output()}`);
        const res = await fetch(`${url}/health`).catch(() => null);
        return res?.status === 200 ? true : undefined;
      },
      30_000,
    );
  } catch (err) {
    await s.stop();
    throw err;
  }

  const get = async (path: string): Promise<string> => {
    const res = await fetch(`${url}${path}`);
    const text = await res.text();
    if (res.status !== 200) throw new Error(`victoria-metrics ${path}: HTTP ${res.status} ${text.slice(0, 500)}`);
    return text;
  };
  const forceFlush = async () => {
    await get('/internal/force_flush');
  };

  return {
    ...s,
    url,
    writeUrl: `${url}/api/v1/write`,
    forceFlush,
    query: async (promql, timeSeconds) => {
      await forceFlush();
      const q = new URLSearchParams({ query: promql });
      if (timeSeconds !== undefined) q.set('time', String(timeSeconds));
      const body = JSON.parse(await get(`/api/v1/query?${q}`)) as { status: string; data: InstantVector };
      return body.data;
    },
    exportSeries: async (match) => {
      await forceFlush();
      // start=0 and an end a day ahead: everything stored, whatever the samples' timestamps.
      const q = new URLSearchParams({ 'match[]': match, start: '0', end: String(Math.ceil(Date.now() / 1000) + 86_400) });
      const text = await get(`/api/v1/export?${q}`);
      return text
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as ExportedSeries);
    },
  };
}
