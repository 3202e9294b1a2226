/**
 * Process metadata for a pid: name, service name and RSS, read from /proc and cached.
 *
 * process name: what ps shows, the kernel's comm of the process, cut at ':' or a space (nginx
 * and setproctitle write "gunicorn: worker [app]" there); Node 24 renames its main thread
 * "MainThread", so then argv[0]'s basename, else the executable's.
 * service.name: OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) the process or
 * its nearest ancestor exec'd with, as the kernel read it at exec (exec-identity.ts); for
 * processes started before the agent, /proc/<pid>/environ (needs CAP_SYS_PTRACE or the same
 * user); else the process name.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { basename } from 'node:path';
import { serviceNameFromResourceAttributes, type ExecIdentity } from './exec-identity.ts';

export interface ProcessInfo {
  pid: number;
  processName: string;
  serviceName: string;
  /** serviceName is the process's own OTEL_SERVICE_NAME (it then wins over pod labels). */
  serviceNameFromEnv: boolean;
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
  let fromResource: string | null = null;
  for (const entry of environ.split('\0')) {
    if (entry.startsWith('OTEL_SERVICE_NAME=')) {
      const v = entry.slice('OTEL_SERVICE_NAME='.length).trim();
      if (v) return v;
    } else if (entry.startsWith('OTEL_RESOURCE_ATTRIBUTES=')) {
      fromResource = serviceNameFromResourceAttributes(entry.slice('OTEL_RESOURCE_ATTRIBUTES='.length));
    }
  }
  return fromResource;
}

/** VmRSS from /proc/<pid>/status in bytes, or null if the process is gone. */
export function readRssBytes(pid: number): number | null {
  const status = tryRead(`/proc/${pid}/status`);
  const m = status ? /^VmRSS:\s+(\d+) kB$/m.exec(status) : null;
  return m ? Number(m[1]) * 1024 : null;
}

/** Thread names runtimes give their main thread, which ps then shows instead of the program. */
const RUNTIME_THREAD_NAMES = new Set(['MainThread']);

/** The program name in a comm or argv[0]: up to the first ':' or space, without a directory. */
export function programName(text: string): string {
  return basename(text.split(/[\s:]/)[0] ?? '');
}

export class ProcessInfoCache {
  private readonly identity: ExecIdentity | null;

  constructor(identity: ExecIdentity | null = null) {
    this.identity = identity;
  }

  private readonly cache = new Map<number, { info: ProcessInfo; comm: string; at: number }>();

  /** `comm` is what the kernel reported, used when /proc is gone (short-lived processes). */
  get(pid: number, comm: string, now = Date.now()): ProcessInfo {
    const hit = this.cache.get(pid);
    // A different comm under a cached pid means exec or pid reuse: look again.
    if (hit && now - hit.at < INFO_TTL_MS && hit.comm === comm) return hit.info;
    const info = this.load(pid, comm);
    if (this.cache.size >= MAX_CACHED) {
      const first = this.cache.keys().next();
      if (!first.done) this.cache.delete(first.value);
    }
    this.cache.set(pid, { info, comm, at: now });
    return info;
  }

  private load(pid: number, comm: string): ProcessInfo {
    const exe = tryReadLink(`/proc/${pid}/exe`);
    const fromComm = RUNTIME_THREAD_NAMES.has(comm) ? '' : programName(comm);
    const argv0 = fromComm ? '' : (tryRead(`/proc/${pid}/cmdline`)?.split('\0')[0] ?? '');
    const processName = fromComm || programName(argv0) || (exe ? basename(exe) : '') || comm || `pid-${pid}`;
    const fromEnv = this.identity?.serviceNameOf(pid) ?? serviceNameFromEnviron(pid);
    return { pid, processName, serviceName: fromEnv ?? processName, serviceNameFromEnv: fromEnv !== null, executablePath: exe };
  }
}
