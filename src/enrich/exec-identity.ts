/**
 * The OpenTelemetry identity each process exec'd with, as the kernel read it from the new
 * program's environment (bpf/process_identity.bpf.c), before the process could rewrite that
 * memory: gunicorn with setproctitle (its recommended install) writes its title over the
 * environment, after which /proc/<pid>/environ no longer has OTEL_SERVICE_NAME. Workers forked
 * later inherit their parent's, so a process without its own entry takes its nearest
 * ancestor's. Entries are keyed by pid and start time: a reused pid is another process.
 */
import { readFileSync } from 'node:fs';
import type { ProcessEnv } from '../decode/records.ts';

interface Identity {
  startTime: string;
  serviceName: string | null;
  resourceAttributes: string | null;
}

const MAX_ENTRIES = 16_384;
const MAX_ANCESTORS = 8;

/** Fields 4 (ppid) and 22 (start time in clock ticks) of /proc/<pid>/stat, or null. */
export function procStat(pid: number): { ppid: number; startTime: string } | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  // comm (field 2) may contain spaces and parentheses: fields restart after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const ppid = Number(rest[1]);
  const startTime = rest[19];
  return Number.isFinite(ppid) && startTime ? { ppid, startTime } : null;
}

/** service.name from an OTEL_RESOURCE_ATTRIBUTES value (key=value pairs, percent-encoded). */
export function serviceNameFromResourceAttributes(value: string): string | null {
  for (const pair of value.split(',')) {
    const eq = pair.indexOf('=');
    if (eq < 0 || pair.slice(0, eq).trim() !== 'service.name') continue;
    try {
      const v = decodeURIComponent(pair.slice(eq + 1).trim());
      if (v) return v;
    } catch {
      return null;
    }
  }
  return null;
}

export class ExecIdentity {
  private readonly byPid = new Map<number, Identity>();

  /** A record from the kernel, as the process starts (its /proc entry is fresh). */
  record(e: ProcessEnv): void {
    const stat = procStat(e.pid);
    if (!stat) return; // already gone: nothing will ask for it
    let id = this.byPid.get(e.pid);
    if (!id || id.startTime !== stat.startTime) {
      id = { startTime: stat.startTime, serviceName: null, resourceAttributes: null };
      this.byPid.delete(e.pid);
      if (this.byPid.size >= MAX_ENTRIES) this.byPid.delete(this.byPid.keys().next().value!);
      this.byPid.set(e.pid, id);
    }
    if (e.name === 'OTEL_SERVICE_NAME') id.serviceName = e.value.trim() || null;
    else id.resourceAttributes = e.value;
  }

  /** OTEL_SERVICE_NAME, else service.name of OTEL_RESOURCE_ATTRIBUTES, that `pid` or its
   * nearest ancestor exec'd with; null when none did while the agent ran. */
  serviceNameOf(pid: number): string | null {
    let cur = pid;
    for (let depth = 0; depth <= MAX_ANCESTORS && cur > 1; depth++) {
      const stat = procStat(cur);
      if (!stat) return null;
      const id = this.byPid.get(cur);
      if (id && id.startTime === stat.startTime) {
        const name = id.serviceName ?? (id.resourceAttributes ? serviceNameFromResourceAttributes(id.resourceAttributes) : null);
        if (name) return name;
        // It exec'd (its environment is its own, not inherited) without one.
        return null;
      }
      cur = stat.ppid;
    }
    return null;
  }
}
