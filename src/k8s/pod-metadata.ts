/**
 * pid → container → pod: reads /proc/<pid>/cgroup once per pid (cached, like ProcessInfoCache)
 * and asks the pod index on every call, so a pod whose container id shows up in its status
 * after the process started is still found. Also the OTel resource attributes of a pod.
 */
import { readFileSync } from 'node:fs';
import { containerFromCgroupFile, type ContainerRef } from './container-id.ts';
import type { PodMetadata } from './pod-index.ts';

export interface PodLookup {
  lookup(containerId: string): PodMetadata | null;
}

export interface PodMetadataResolverOptions {
  /** Re-read a pid's cgroup after this long (pid reuse). Default 30 s. */
  ttlMs?: number;
  maxCached?: number;
  /** /proc/<pid>/cgroup's text, or null when the process is gone. For tests. */
  readCgroup?: (pid: number) => string | null;
}

function readProcCgroup(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    return null;
  }
}

export class PodMetadataResolver {
  private readonly index: PodLookup;
  private readonly ttlMs: number;
  private readonly maxCached: number;
  private readonly readCgroup: (pid: number) => string | null;
  private readonly cache = new Map<number, { container: ContainerRef | null; at: number }>();

  constructor(index: PodLookup, opts: PodMetadataResolverOptions = {}) {
    this.index = index;
    this.ttlMs = opts.ttlMs ?? 30_000;
    this.maxCached = opts.maxCached ?? 4096;
    this.readCgroup = opts.readCgroup ?? readProcCgroup;
  }

  /** The container the process runs in (null: not in a container, or gone), cached per pid. */
  containerForPid(pid: number, now = Date.now()): ContainerRef | null {
    const hit = this.cache.get(pid);
    if (hit && now - hit.at < this.ttlMs) return hit.container;
    const text = this.readCgroup(pid);
    const container = text === null ? null : containerFromCgroupFile(text);
    // A vanished process is not cached: its pid may come back as another process at once.
    if (text === null) return hit?.container ?? null;
    if (this.cache.size >= this.maxCached) {
      const first = this.cache.keys().next();
      if (!first.done) this.cache.delete(first.value);
    }
    this.cache.delete(pid);
    this.cache.set(pid, { container, at: now });
    return container;
  }

  /** The pod container the process runs in, or null (not in a pod of this node, or not known yet). */
  metadataForPid(pid: number, now = Date.now()): PodMetadata | null {
    const container = this.containerForPid(pid, now);
    return container ? this.index.lookup(container.id) : null;
  }

  forget(pid: number): void {
    this.cache.delete(pid);
  }
}

/** OTel resource attributes of a pod container (service.name only when the pod names one). */
export function k8sResourceAttributes(m: PodMetadata): Record<string, string> {
  const attrs: Record<string, string> = {
    'k8s.namespace.name': m.namespace,
    'k8s.pod.name': m.podName,
    'k8s.pod.uid': m.podUid,
    'k8s.container.name': m.containerName,
    'k8s.node.name': m.nodeName,
  };
  if (m.deploymentName) attrs['k8s.deployment.name'] = m.deploymentName;
  if (m.serviceName) attrs['service.name'] = m.serviceName;
  return attrs;
}
