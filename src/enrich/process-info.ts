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
import { escapeControls } from '../http/safe-text.ts';
import { procStat, serviceNameFromResourceAttributes, type ExecIdentity } from './exec-identity.ts';

export interface ProcessInfo {
  pid: number;
  processName: string;
  serviceName: string;
  /** serviceName is the process's own OTEL_SERVICE_NAME (it then wins over pod labels). */
  serviceNameFromEnv: boolean;
  executablePath: string | null;
}

/** Re-read metadata after this long, to notice exec. */
const INFO_TTL_MS = 30_000;
/**
 * How often a cached pid's start time is checked again. A pid reused by a new process gets a
 * new start time: the entry is then reloaded, so the new process never inherits the old
 * one's service (issue 13, finding 8). One small /proc read per pid per second.
 */
const VERIFY_EVERY_MS = 1_000;
const MAX_CACHED = 4096;

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or null if the process is gone. */
export function readStartTime(pid: number): string | null {
  return procStat(pid)?.startTime ?? null;
}

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

interface CachedInfo {
  info: ProcessInfo;
  comm: string;
  startTime: string | null;
  loadedAt: number;
  verifiedAt: number;
}

/** Cached by pid and start time: a pid that now belongs to another process is looked up again. */
export class ProcessInfoCache {
  private readonly cache = new Map<number, CachedInfo>();
  private readonly readStart: (pid: number) => string | null;
  private readonly identity: ExecIdentity | null;

  constructor(identity: ExecIdentity | null = null, readStart: (pid: number) => string | null = readStartTime) {
    this.identity = identity;
    this.readStart = readStart;
  }

  /** `comm` is what the kernel reported, used when /proc is gone (short-lived processes). */
  get(pid: number, comm: string, now = Date.now()): ProcessInfo {
    const hit = this.cache.get(pid);
    // A different comm under a cached pid means exec or pid reuse: look again.
    if (hit && now - hit.loadedAt < INFO_TTL_MS && hit.comm === comm) {
      if (now - hit.verifiedAt < VERIFY_EVERY_MS) return hit.info;
      const startTime = this.readStart(pid);
      // Gone (null): keep what we knew, the record is about that process.
      if (startTime === null || startTime === hit.startTime) {
        hit.verifiedAt = now;
        return hit.info;
      }
    }
    const startTime = this.readStart(pid);
    const info = this.load(pid, comm);
    if (this.cache.size >= MAX_CACHED) {
      const first = this.cache.keys().next();
      if (!first.done) this.cache.delete(first.value);
    }
    this.cache.delete(pid);
    this.cache.set(pid, { info, comm, startTime, loadedAt: now, verifiedAt: now });
    return info;
  }

  private load(pid: number, comm: string): ProcessInfo {
    const exe = tryReadLink(`/proc/${pid}/exe`);
    const fromComm = RUNTIME_THREAD_NAMES.has(comm) ? '' : programName(comm);
    const argv0 = fromComm ? '' : (tryRead(`/proc/${pid}/cmdline`)?.split('\0')[0] ?? '');
    // Any process chooses its own argv, comm and environment: no control character from them
    // reaches records, labels or terminals.
    const processName = escapeControls(fromComm || programName(argv0) || (exe ? basename(exe) : '') || comm || `pid-${pid}`);
    const env = this.identity?.serviceNameOf(pid) ?? serviceNameFromEnviron(pid);
    const fromEnv = env === null ? null : escapeControls(env);
    return { pid, processName, serviceName: fromEnv ?? processName, serviceNameFromEnv: fromEnv !== null, executablePath: exe };
  }
}
