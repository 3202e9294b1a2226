/**
 * The container a process runs in, from the text of /proc/<pid>/cgroup. Pure: no I/O.
 *
 * Each line is `hierarchy-id:controllers:path`. cgroup v2 has one line `0::/path`; v1 has one
 * line per hierarchy; hybrid hosts have both (the v2 line often just `/`). The v2 line is tried
 * first, then the v1 lines in order; the first that names a container wins.
 *
 * Within a path the last segment that names a container wins, so nested runtimes (kind,
 * Docker-in-Docker: `/docker/<outer>/kubepods/.../<inner>`) give the innermost container, and
 * sub-cgroups under a container (`cri-containerd-<id>.scope/init.scope`) still give it. Paths
 * relative to a cgroup namespace (`/../../kubepods-...slice/cri-containerd-<id>.scope`) work too.
 *
 * Recognised segments (ids are 64 lowercase hex digits):
 *   cri-containerd-<id>.scope   containerd, systemd cgroup driver
 *   crio-<id>.scope, crio-<id>  CRI-O (systemd / cgroupfs driver); crio-conmon-<id> is not a container
 *   docker-<id>.scope           Docker, systemd driver
 *   libpod-<id>.scope           Podman
 *   docker/<id>                 Docker, cgroupfs driver
 *   <id>                        containerd (or dockershim) with the cgroupfs driver: /kubepods/.../pod<uid>/<id>
 */

export type ContainerRuntime = 'containerd' | 'cri-o' | 'docker' | 'podman' | 'unknown';

export interface ContainerRef {
  /** 64 lowercase hex digits, as in a pod's status.containerStatuses[].containerID after `<runtime>://`. */
  id: string;
  runtime: ContainerRuntime;
}

const PREFIXED = /^(cri-containerd|crio|docker|libpod)-([0-9a-f]{64})(?:\.scope)?$/;
const BARE = /^[0-9a-f]{64}$/;
const RUNTIME_OF_PREFIX: Record<string, ContainerRuntime> = {
  'cri-containerd': 'containerd',
  crio: 'cri-o',
  docker: 'docker',
  libpod: 'podman',
};

/** The container named by one cgroup path, or null. */
export function containerFromCgroupPath(path: string): ContainerRef | null {
  const segments = path.split('/');
  for (let i = segments.length - 1; i >= 0; i--) {
    const seg = segments[i] ?? '';
    const m = PREFIXED.exec(seg);
    if (m) return { id: m[2] as string, runtime: RUNTIME_OF_PREFIX[m[1] as string] ?? 'unknown' };
    if (BARE.test(seg)) {
      // Under /docker/ it is Docker's; under /kubepods/ with the cgroupfs driver the runtime
      // does not show (containerd, or dockershim): the pod's containerID tells.
      return { id: seg, runtime: segments[i - 1] === 'docker' ? 'docker' : 'unknown' };
    }
  }
  return null;
}

/** The container of the process whose /proc/<pid>/cgroup reads `text`, or null (host process, garbage). */
export function containerFromCgroupFile(text: string): ContainerRef | null {
  const v2: string[] = [];
  const v1: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    // hierarchy-id:controllers:path; the path itself may contain ':'.
    const first = line.indexOf(':');
    const second = first < 0 ? -1 : line.indexOf(':', first + 1);
    if (second < 0) continue;
    const hierarchy = line.slice(0, first);
    const path = line.slice(second + 1);
    if (!/^\d+$/.test(hierarchy) || !path.startsWith('/')) continue;
    (hierarchy === '0' && first + 1 === second ? v2 : v1).push(path);
  }
  for (const path of [...v2, ...v1]) {
    const ref = containerFromCgroupPath(path);
    if (ref) return ref;
  }
  return null;
}

/**
 * The bare id of a pod status containerID (`containerd://<id>`, `cri-o://<id>`, `docker://<id>`),
 * lowercased, or null when it is empty or not of that form.
 */
export function containerIdFromStatus(containerID: string | undefined | null): string | null {
  if (!containerID) return null;
  const m = /^[a-z0-9.+-]+:\/\/([0-9a-fA-F]{12,128})$/.exec(containerID.trim());
  return m ? (m[1] as string).toLowerCase() : null;
}
