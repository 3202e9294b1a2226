/**
 * Process metadata for a pid: name, service name and RSS, read from /proc and cached.
 * service.name comes from the process's own OTEL_SERVICE_NAME when it sets one (reading
 * /proc/<pid>/environ needs CAP_SYS_PTRACE or the same user), else its executable name.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { basename } from 'node:path';

export interface ProcessInfo {
  pid: number;
  processName: string;
  serviceName: string;
  executablePath: string | null;
}

/** Re-read metadata after this long, to notice pid reuse and exec. */
const INFO_TTL_MS = 30_000;
const MAX_CACHED = 4096;

function tryRead(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function tryReadLink(path: string): string | null {
  try {
    return readlinkSync(path);
  } catch {
    return null;
  }
}

function serviceNameFromEnviron(pid: number): string | null {
  const environ = tryRead(`/proc/${pid}/environ`);
  if (!environ) return null;
  for (const entry of environ.split('\0')) {
    if (entry.startsWith('OTEL_SERVICE_NAME=')) {
      const v = entry.slice('OTEL_SERVICE_NAME='.length).trim();
      if (v) return v;
    }
  }
  return null;
}

/** VmRSS from /proc/<pid>/status in bytes, or null if the process is gone. */
export function readRssBytes(pid: number): number | null {
  const status = tryRead(`/proc/${pid}/status`);
  const m = status ? /^VmRSS:\s+(\d+) kB$/m.exec(status) : null;
  return m ? Number(m[1]) * 1024 : null;
}

export class ProcessInfoCache {
  private readonly cache = new Map<number, { info: ProcessInfo; at: number }>();

  /** `comm` is what the kernel reported, used when /proc is gone (short-lived processes). */
  get(pid: number, comm: string, now = Date.now()): ProcessInfo {
    const hit = this.cache.get(pid);
    if (hit && now - hit.at < INFO_TTL_MS && hit.info.processName === comm) return hit.info;
    const info = this.load(pid, comm);
    if (this.cache.size >= MAX_CACHED) {
      const first = this.cache.keys().next();
      if (!first.done) this.cache.delete(first.value);
    }
    this.cache.set(pid, { info, at: now });
    return info;
  }

  private load(pid: number, comm: string): ProcessInfo {
    const exe = tryReadLink(`/proc/${pid}/exe`);
    const serviceName = serviceNameFromEnviron(pid) ?? (comm || (exe ? basename(exe) : `pid-${pid}`));
    return { pid, processName: comm, serviceName, executablePath: exe };
  }
}
