/**
 * --namespace / --pods enforced in the kernel: the cgroup v2 ids of the matching pods'
 * containers go to the loader's `cgroups` filter, so connections of every other pod are
 * turned away at accept() and cost nothing more. Refreshed on a timer: containers start,
 * restart and stop, and pods come and go.
 *
 * A container is found through its processes: /proc/<pid>/cgroup gives its cgroup path and
 * container id, the pod index its pod, and the directory's inode in the cgroup v2 hierarchy
 * is the id the kernel reports (bpf_get_current_cgroup_id).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../log.ts';
import { containerFromCgroupFile } from './container-id.ts';
import type { PodMetadata } from './pod-index.ts';

/** No real cgroup has this id: a filter holding only it lets nothing through. */
export const CLOSED_CGROUP_FILTER = '18446744073709551615';
const NOTHING = CLOSED_CGROUP_FILTER;

export interface CgroupAllowListOptions {
  namespaces: string[];
  pods: string[];
  lookup: (containerId: string) => PodMetadata | null;
  /** Sends a loader control line (`cgroups <ids>`). */
  send: (command: string) => void;
  log: Logger;
  refreshMs?: number;
  procRoot?: string;
}

/** Where cgroup v2 is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts). */
export function cgroup2Mount(mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string | null {
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    if (f[f.indexOf('-') + 1] === 'cgroup2') return f[4] ?? null;
  }
  return null;
}

/** The v2 path of a /proc/<pid>/cgroup file ("0::/path"), or null. */
function v2Path(text: string): string | null {
  const line = text.split('\n').find((l) => l.startsWith('0::'));
  return line ? line.slice(3) : null;
}

export class CgroupAllowList {
  readonly #opts: CgroupAllowListOptions;
  readonly #mount: string | null;
  #timer: NodeJS.Timeout | null = null;
  #last = '';

  constructor(opts: CgroupAllowListOptions) {
    this.#opts = opts;
    this.#mount = cgroup2Mount();
    if (!this.#mount) opts.log.warn('no cgroup v2 hierarchy: --namespace/--pods cannot be enforced in the kernel, nothing will be traced');
  }

  matches(pod: PodMetadata): boolean {
    const { namespaces, pods } = this.#opts;
    return (namespaces.length === 0 || namespaces.includes(pod.namespace)) && (pods.length === 0 || pods.includes(pod.podName));
  }

  /** The cgroup ids of matching containers now on this node. */
  allowedIds(): string[] {
    if (!this.#mount) return [];
    const root = this.#opts.procRoot ?? '/proc';
    const ids = new Set<string>();
    for (const entry of readdirSync(root)) {
      if (!/^\d+$/.test(entry)) continue;
      let text: string;
      try {
        text = readFileSync(join(root, entry, 'cgroup'), 'utf8');
      } catch {
        continue; // the process is gone
      }
      const container = containerFromCgroupFile(text);
      const path = container && v2Path(text);
      if (!container || !path) continue;
      const pod = this.#opts.lookup(container.id);
      if (!pod || !this.matches(pod)) continue;
      try {
        ids.add(String(statSync(join(this.#mount, path)).ino));
      } catch {
        // the cgroup went away between the two reads
      }
    }
    return [...ids].sort();
  }

  /** Recomputes the set and tells the loader when it changed. */
  refresh(): void {
    const ids = this.allowedIds();
    const list = ids.length ? ids.join(',') : NOTHING;
    if (list === this.#last) return;
    this.#last = list;
    this.#opts.send(`cgroups ${list}`);
    this.#opts.log.info(`kernel filter: ${ids.length} container cgroups of ${this.describe()}`);
  }

  /** The loader (re)started with the filter closed: send the current set again. */
  resend(): void {
    this.#last = '';
    this.refresh();
  }

  start(): void {
    this.refresh();
    this.#timer = setInterval(() => this.refresh(), this.#opts.refreshMs ?? 5_000);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }

  private describe(): string {
    const parts = [];
    if (this.#opts.namespaces.length) parts.push(`namespaces ${this.#opts.namespaces.join(',')}`);
    if (this.#opts.pods.length) parts.push(`pods ${this.#opts.pods.join(',')}`);
    return parts.join(', ');
  }
}
