/** The kernel matrix's report: one table, check x kernel, then every failure with its reason. */
import type { CheckLine } from './checks-reporter.ts';

export interface RunResult {
  label: string;
  release: string;
  /** null for the host run (the host's own CPUs). */
  cpus: number | null;
  accel: 'native' | 'kvm' | 'tcg';
  /** Wall time of the run: the VM's boot and shutdown included. */
  seconds: number;
  checks: CheckLine[];
  /** measured.json as the smoke wrote it, or null when it did not get that far. */
  measured: Record<string, unknown> | null;
  /** Why the run gave no usable result (no VM boot, a timeout), when it did not. */
  problem?: string;
}

interface ServerNumbers {
  cpuWithinTolerancePct?: number;
  cpuMedianErrMs?: number;
  cpuToleranceAbsMs?: number;
  timeScale?: number;
  rssWorstRelErr?: number;
  requests?: number;
}

function serverNumbers(r: RunResult): Record<string, ServerNumbers> {
  return (r.measured?.servers as Record<string, ServerNumbers> | undefined) ?? {};
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

/** Prints the table and the failures, then "kernels: N passed, N failed"; returns the failures. */
export function printReport(results: RunResult[], totalSeconds: number): number {
  const checkNames: string[] = [];
  for (const r of results) for (const c of r.checks) if (!checkNames.includes(c.name)) checkNames.push(c.name);
  const cell = (r: RunResult, name: string) => {
    const c = r.checks.find((x) => x.name === name);
    if (!c) return r.problem ? 'FAIL' : '-';
    return c.skipped ? 'skip' : c.ok ? 'ok' : 'FAIL';
  };
  const fmt = (n: number | undefined, digits: number) => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(digits));
  const rows: [string, (r: RunResult) => string][] = [
    ['release', (r) => r.release],
    ['CPUs / accel', (r) => `${r.cpus ?? 'host'} / ${r.accel}`],
    ...checkNames.map((n): [string, (r: RunResult) => string] => [n, (r) => cell(r, n)]),
    ...['node', 'python'].flatMap((s): [string, (r: RunResult) => string][] => [
      [`${s}: CPU within tol. % / median err ms`, (r) => `${fmt(serverNumbers(r)[s]?.cpuWithinTolerancePct, 1)} / ${fmt(serverNumbers(r)[s]?.cpuMedianErrMs, 3)}`],
      [`${s}: slowdown (own clock) / tol. ms`, (r) => `${fmt(serverNumbers(r)[s]?.timeScale, 1)} / ${fmt(serverNumbers(r)[s]?.cpuToleranceAbsMs, 2)}`],
      [`${s}: RSS worst err %`, (r) => fmt((serverNumbers(r)[s]?.rssWorstRelErr ?? NaN) * 100, 3)],
    ]),
    ['seconds (boot + smoke)', (r) => r.seconds.toFixed(0)],
  ];
  const width0 = Math.max(...rows.map(([n]) => n.length)) + 2;
  const widths = results.map((r) => Math.max(r.label.length, ...rows.map(([, f]) => f(r).length)) + 2);
  console.log('\n' + pad('kernel matrix', width0) + results.map((r, i) => pad(r.label, widths[i]!)).join(''));
  for (const [name, f] of rows) console.log(pad(name, width0) + results.map((r, i) => pad(f(r), widths[i]!)).join(''));

  let passed = 0;
  let failed = 0;
  for (const r of results) {
    if (r.problem) {
      failed++;
      console.log(`\n${r.label}: ${r.problem}`);
    }
    for (const c of r.checks) {
      if (c.skipped) continue;
      if (c.ok) passed++;
      else {
        failed++;
        console.log(`\n${r.label} (${r.release}): ${c.name}\n  ${(c.error ?? '').split('\n').join('\n  ')}`);
      }
    }
  }
  console.log(`\nkernel matrix: ${results.length} runs in ${(totalSeconds / 60).toFixed(1)} min`);
  console.log(`kernels: ${passed} passed, ${failed} failed`);
  return failed;
}
