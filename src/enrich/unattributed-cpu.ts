/**
 * CPU of each process's serving threads that no request was charged (timers, background work,
 * waiting for the next request: bpf/cpu.bpf.h), as the loader reports it with its
 * stats. With the requests' cpu_time_ms it adds up to those threads' CPU: nothing vanishes.
 * Kept per pid, cumulative; a process that exits keeps its last value, so totals by name only
 * grow (a Prometheus counter).
 */
import type { ProcessCpu } from '../decode/records.ts';
import type { ProcessInfoCache } from './process-info.ts';

const MAX_PROCESSES = 8192; // the kernel map's size

export interface UnattributedCpu {
  pid: number;
  process_name: string;
  service_name: string;
  ms: number;
}

export class UnattributedCpuTable {
  private readonly byPid = new Map<number, UnattributedCpu>();
  private readonly processes: ProcessInfoCache;

  constructor(processes: ProcessInfoCache) {
    this.processes = processes;
  }

  record(r: ProcessCpu): void {
    let entry = this.byPid.get(r.pid);
    if (!entry) {
      if (this.byPid.size >= MAX_PROCESSES) this.byPid.delete(this.byPid.keys().next().value!);
      const info = this.processes.get(r.pid, '');
      entry = { pid: r.pid, process_name: info.processName, service_name: info.serviceName, ms: 0 };
      this.byPid.set(r.pid, entry);
    }
    entry.ms = Math.max(entry.ms, r.unattributedNs / 1e6);
  }

  /** The processes with the most, for /health. */
  top(n: number): UnattributedCpu[] {
    return [...this.byPid.values()].sort((a, b) => b.ms - a.ms).slice(0, n);
  }

  /** Seconds by (process, service), for perfcatch_cpu_unattributed_seconds_total. */
  byName(): { process: string; service: string; seconds: number }[] {
    const sums = new Map<string, { process: string; service: string; seconds: number }>();
    for (const e of this.byPid.values()) {
      const key = `${e.process_name}\0${e.service_name}`;
      const s = sums.get(key) ?? { process: e.process_name, service: e.service_name, seconds: 0 };
      s.seconds += e.ms / 1e3;
      sums.set(key, s);
    }
    return [...sums.values()];
  }
}
