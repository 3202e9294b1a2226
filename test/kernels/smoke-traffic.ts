/**
 * The smoke's workload and its scoring against ground truth: a few hundred keep-alive
 * requests (CPU work, small and large bodies both ways, some 404s) on raw-socket clients, so
 * bytes are known exactly; the servers append each request's own thread-CPU clock and VmRSS
 * to their truth file (see test/servers/).
 */
import { readFileSync } from 'node:fs';
import { getRequest, postRequest, RawHttpClient, type RawResponse } from '../harness/raw-client.ts';
import { rssError } from '../harness/rss-truth.ts';
import type { RequestRecord } from '../../src/types.ts';

/** Small on purpose: under TCG user space is 10-30x slower. */
const CONNECTIONS = 2;
const WARMUP_PER_CONNECTION = 10;
const PER_CONNECTION = 60;

/** The accuracy contract's CPU tolerance (README, "Accuracy"): max(5%, 0.3 ms). */
const CPU_REL = 0.05;
const CPU_ABS_MS = 0.3;

export interface Sent {
  id: string;
  method: string;
  path: string;
  res: RawResponse;
}

export interface Measured {
  requests: number;
  missing: number;
  extra: number;
  byteErrors: number;
  fieldErrors: number;
  cpuToleranceAbsMs: number;
  cpuMedianErrMs: number;
  cpuWorstErrMs: number;
  cpuWithinTolerancePct: number;
  rssWorstRelErr: number;
  wallMs: number;
  /** Per request: id, path, the server's own CPU ms, the agent's, the server's VmRSS, the agent's. */
  perRequest: [string, string, number, number, number, number][];
}

/**
 * Request i of a connection. `scale` stretches the CPU work (see timeScale), so that the
 * CPU-bound requests stay as heavy against the scaled tolerance as they are on the host.
 */
function requestFor(i: number, id: string, scale: number): { raw: string | Buffer; method: string; path: string } {
  const h = { 'X-Correlation-ID': id };
  switch (i % 4) {
    case 0:
      return { raw: getRequest(`/compute?ms=${((1 + (i % 2)) * scale).toFixed(3)}`, h), method: 'GET', path: '/compute?REDACTED' };
    case 1:
      return { raw: getRequest(`/hello/${i}`, h), method: 'GET', path: `/hello/${i}` };
    case 2:
      return { raw: postRequest('/echo', Buffer.alloc((i * 373) % 20_000, 'e'), h), method: 'POST', path: '/echo' };
    default: {
      const status = i % 20 === 3 ? 404 : 200;
      return { raw: getRequest(`/size?bytes=${(i * 1009) % 60_000}&status=${status}`, h), method: 'GET', path: '/size?REDACTED' };
    }
  }
}

async function drive(port: number, prefix: string, perConnection: number, scale: number): Promise<Sent[]> {
  const sent: Sent[] = [];
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async (_, c) => {
      const client = new RawHttpClient(port);
      for (let i = 0; i < perConnection; i++) {
        const id = `${prefix}-${c}-${i}`;
        const { raw, method, path } = requestFor(i, id, scale);
        sent.push({ id, method, path, res: await client.request(raw) });
      }
      await client.close();
    }),
  );
  return sent;
}

/** Warm-up (first-request costs): checked for records, bytes and RSS, not CPU. */
export function warmUp(port: number, prefix: string): Promise<Sent[]> {
  return drive(port, `${prefix}-warm`, WARMUP_PER_CONNECTION, 1);
}

export function driveKeepAlive(port: number, prefix: string, scale: number): Promise<Sent[]> {
  return drive(port, prefix, PER_CONNECTION, scale);
}

/** The median of the server's own CPU clock over the /hello requests of `sent` (not warm-up), in ms. */
export function helloCpuMs(sent: Sent[], truth: Map<string, { cpuMs: number }>): number {
  const v = sent.filter((s) => s.path.startsWith('/hello/')).map((s) => truth.get(s.id)?.cpuMs ?? NaN);
  return median(v.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b));
}

/**
 * How much slower this machine runs the server than the host does, by the server's own
 * clock: its /hello CPU here over the same on the host (the matrix runs the host first and
 * passes its figure in). 1 on the host itself and when no host figure is given.
 * The contract's absolute CPU tolerance (0.3 ms) covers per-request work outside the
 * server's clock window (syscalls, the runtime's dispatch), which is exactly as much slower.
 */
export function timeScale(hereMs: number, hostMs: number | undefined): number {
  if (hostMs === undefined || !(hostMs > 0) || !(hereMs > 0)) return 1;
  return Math.max(1, hereMs / hostMs);
}

/** "<id> <cpu_ns> <rss>" lines the server appended after each response. */
export function readTruth(file: string): Map<string, { cpuMs: number; rss: number }> {
  const out = new Map<string, { cpuMs: number; rss: number }>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const [id, cpu, rss] = line.trim().split(' ');
    if (id && cpu && rss) out.set(id, { cpuMs: Number(cpu) / 1e6, rss: Number(rss) });
  }
  return out;
}

function median(sorted: number[]): number {
  return sorted.length ? sorted[Math.ceil(sorted.length / 2) - 1]! : NaN;
}

/** Scores the agent's records for one server against what was sent and the server's truth. */
export function measure(sent: Sent[], records: RequestRecord[], truth: Map<string, { cpuMs: number; rss: number }>, scale: number): Measured {
  const byId = new Map(records.map((r) => [r.correlation_id, r]));
  const m: Measured = {
    requests: sent.length,
    missing: 0,
    extra: records.length - sent.filter((x) => byId.has(x.id)).length,
    byteErrors: 0,
    fieldErrors: 0,
    cpuToleranceAbsMs: CPU_ABS_MS * scale,
    cpuMedianErrMs: 0,
    cpuWorstErrMs: 0,
    cpuWithinTolerancePct: 0,
    rssWorstRelErr: 0,
    wallMs: 0,
    perRequest: [],
  };
  const cpuErrs: number[] = [];
  let within = 0;
  for (const s of sent) {
    const r = byId.get(s.id);
    if (!r) {
      m.missing++;
      continue;
    }
    if (r.bytes_received !== s.res.bytesSent || r.bytes_sent !== s.res.bytesReceived) m.byteErrors++;
    if (r.http_method !== s.method || r.http_path !== s.path || r.http_status !== s.res.status) m.fieldErrors++;
    const t = truth.get(s.id)!;
    m.rssWorstRelErr = Math.max(m.rssWorstRelErr, rssError(r.memory_rss_bytes, s.res, t.rss));
    m.perRequest.push([s.id, s.path, t.cpuMs, r.cpu_time_ms, t.rss, r.memory_rss_bytes]);
    if (s.id.includes('-warm-')) continue;
    const err = Math.abs(r.cpu_time_ms - t.cpuMs);
    cpuErrs.push(err);
    if (err <= Math.max(m.cpuToleranceAbsMs, CPU_REL * t.cpuMs)) within++;
  }
  cpuErrs.sort((a, b) => a - b);
  m.cpuMedianErrMs = median(cpuErrs);
  m.cpuWorstErrMs = cpuErrs[cpuErrs.length - 1] ?? NaN;
  m.cpuWithinTolerancePct = cpuErrs.length ? (100 * within) / cpuErrs.length : 0;
  return m;
}
