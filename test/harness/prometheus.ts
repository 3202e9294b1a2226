/**
 * A real Prometheus (Debian's `prometheus` package, 2.42, installed by scripts/setup.sh) scraping one target every second,
 * with exemplar storage on: what a Grafana panel's exemplars would come from. Its own free
 * port and a throwaway data directory.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from './ports.ts';
import { spawnTracked, type Spawned } from './processes.ts';

export const PROMETHEUS_BIN = '/usr/bin/prometheus';

export interface StoredExemplar {
  labels: Record<string, string>;
  value: string;
  timestamp: number;
}

export interface RunningPrometheus extends Spawned {
  url: string;
  /** /api/v1/query_exemplars over the last hour: the series of `query` with their exemplars. */
  exemplars(query: string): Promise<{ seriesLabels: Record<string, string>; exemplars: StoredExemplar[] }[]>;
}

/** Scrapes `target` (host:port) at /metrics. */
export async function startPrometheus(target: string): Promise<RunningPrometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'perfcatch-prometheus-'));
  const port = await freePort();
  writeFileSync(
    join(dir, 'prometheus.yml'),
    `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: perfcatch\n    static_configs:\n      - targets: ['${target}']\n`,
  );
  const s = spawnTracked(PROMETHEUS_BIN, [
    `--config.file=${join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--enable-feature=exemplar-storage',
  ]);
  const url = `http://127.0.0.1:${port}`;
  await waitFor('prometheus ready', async () => {
    if (s.child.exitCode !== null) throw new Error(`prometheus exited: ${s.output()}`);
    const res = await fetch(`${url}/-/ready`).catch(() => null);
    return res?.status === 200 ? true : undefined;
  }, 60_000);
  return {
    ...s,
    url,
    exemplars: async (query) => {
      const end = Date.now() / 1000;
      const params = new URLSearchParams({ query, start: String(end - 3600), end: String(end + 60) });
      const res = await fetch(`${url}/api/v1/query_exemplars?${params}`);
      const body = (await res.json()) as { status: string; data?: { seriesLabels: Record<string, string>; exemplars: StoredExemplar[] }[]; error?: string };
      if (body.status !== 'success') throw new Error(`query_exemplars: ${body.error}`);
      return body.data ?? [];
    },
  };
}
