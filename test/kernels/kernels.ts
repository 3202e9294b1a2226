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
  /**
   * Why the smoke's per-request CPU check is reported, not asserted, in this run (it is
   * asserted in every other run and natively). Unset: asserted.
   */
  cpuReportedOnly?: string;
}

/**
 * One VM per run, booted one after another (the machine has 2 cores). The 12-vCPU run has
 * more CPUs than the host, so it takes the > 8-CPU RSS path (a rate-limited per-CPU sum).
 * 5.10 and 6.1 get one vCPU: under TCG with icount (vm.ts) their secondary-CPU bring-up
 * never completes (the guest resets at "Booting SMP configuration"). 6.12 boots with any,
 * but TCG runs a multi-vCPU guest's CPUs round-robin on one host thread under icount, and
 * the servers' own thread clocks then disagree with the guest's scheduler by whole time
 * slices: measured, 94-98% of requests within the CPU tolerance with 2 and with 12 vCPUs,
 * 100% with one vCPU on every kernel, 99% natively on the 2-CPU host.
 */
const TCG_SMP_CLOCKS =
  'TCG runs the 12 vCPUs round-robin under icount, and thread clocks drift by time slices; this run is for the > 8-CPU RSS path, the CPU check runs in the 1-vCPU guests and natively';
export const VM_RUNS: readonly VmRun[] = [
  { kernel: '5.10', cpus: 1 },
  { kernel: '6.1', cpus: 1 },
  { kernel: '6.12', cpus: 1 },
  { kernel: '6.12', cpus: 12, cpuReportedOnly: TCG_SMP_CLOCKS },
];

/** Guest memory: the agent, two servers and Node's test runner fit with room to spare. */
export const VM_MEMORY_MB = 3072;

export function kernelById(id: string): DebianKernel {
  const k = DEBIAN_KERNELS.find((x) => x.id === id);
  if (!k) throw new Error(`unknown kernel ${id}: expected one of ${DEBIAN_KERNELS.map((x) => x.id).join(', ')}`);
  return k;
}
