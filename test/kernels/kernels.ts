/**
 * The kernel matrix: which Debian kernels `npm run test:kernels` boots, and how. The one
 * table that the matrix runner, the fetch script's arguments and the README's list come from.
 */

export interface DebianKernel {
  /** Short name in the results table. */
  id: string;
  /** Debian suite that carries it (bookworm-backports needs the private sources list). */
  suite: string;
  /** Tried first; mirrors drop old ABIs, so `fallback` picks the newest match when it is gone. */
  pinned: string;
  fallback: string;
}

export const DEBIAN_KERNELS: readonly DebianKernel[] = [
  {
    id: '5.10',
    suite: 'bullseye',
    pinned: 'linux-image-5.10.0-46-amd64-unsigned',
    fallback: String.raw`^linux-image-5\.10\.0-[0-9]+-amd64-unsigned$`,
  },
  {
    id: '6.1',
    suite: 'bookworm',
    pinned: 'linux-image-6.1.0-57-amd64-unsigned',
    fallback: String.raw`^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$`,
  },
  {
    id: '6.12',
    suite: 'bookworm-backports',
    pinned: 'linux-image-6.12.117+deb12-amd64-unsigned',
    fallback: String.raw`^linux-image-6\.12\.[0-9]+\+(deb12|bpo)-amd64-unsigned$`,
  },
];

export interface VmRun {
  kernel: DebianKernel['id'];
  cpus: number;
}

/**
 * One VM per run, booted one after another (the machine has 2 cores). The 12-vCPU run has
 * more CPUs than the host, so it takes the > 8-CPU RSS path (a rate-limited per-CPU sum).
 * 5.10 and 6.1 get one vCPU: under TCG with icount (vm.ts) their secondary-CPU bring-up
 * never completes (the guest resets at "Booting SMP configuration"); 6.12 boots with any.
 */
export const VM_RUNS: readonly VmRun[] = [
  { kernel: '5.10', cpus: 1 },
  { kernel: '6.1', cpus: 1 },
  { kernel: '6.12', cpus: 2 },
  { kernel: '6.12', cpus: 12 },
];

/** Guest memory: the agent, two servers and Node's test runner fit with room to spare. */
export const VM_MEMORY_MB = 3072;

export function kernelById(id: string): DebianKernel {
  const k = DEBIAN_KERNELS.find((x) => x.id === id);
  if (!k) throw new Error(`unknown kernel ${id}: expected one of ${DEBIAN_KERNELS.map((x) => x.id).join(', ')}`);
  return k;
}
