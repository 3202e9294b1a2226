/** A process's CPU and memory as /proc reports them, for the benchmarks. */
import { readFileSync } from 'node:fs';

/** utime + stime of a process in µs (USER_HZ = 100). */
export function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10_000;
}

/** A memory line of /proc/<pid>/status (VmRSS, VmHWM, ...) in MiB; 0 when absent. */
export function statusMb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}
