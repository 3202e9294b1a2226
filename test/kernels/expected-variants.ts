/**
 * What `/health` must report under `kernel.variants` on a given kernel release, derived from
 * the kernel's feature floors (not from the agent's own code, so that a wrong choice in the
 * loader shows up here):
 *  - syscall_args: `bpf_task_pt_regs` (5.15) lets the exit tracepoint read the syscall's
 *    arguments ("exit_regs"); before it they travel from entry to exit in a map ("enter_map");
 *  - idle_flush: `bpf_for_each_map_elem` (5.13) lets the kernel walk idle connections
 *    ("kernel_walk"); before it the loader scans the connection table ("loader_scan");
 *  - rss: per-CPU `rss_stat` counters (6.2) are summed as /proc does ("percpu_sum"); before
 *    them the mm's atomic counters are the value /proc shows ("atomic").
 */

export interface KernelVariants {
  syscall_args: 'exit_regs' | 'enter_map';
  idle_flush: 'kernel_walk' | 'loader_scan' | 'off';
  rss: 'percpu_sum' | 'atomic';
}

/** [major, minor] of a `uname -r` string such as "6.12.117+deb12-amd64". */
export function kernelVersion(release: string): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) throw new Error(`not a kernel release: ${JSON.stringify(release)}`);
  return [Number(m[1]), Number(m[2])];
}

function atLeast(release: string, major: number, minor: number): boolean {
  const [a, b] = kernelVersion(release);
  return a > major || (a === major && b >= minor);
}

export function expectedVariants(release: string): KernelVariants {
  return {
    syscall_args: atLeast(release, 5, 15) ? 'exit_regs' : 'enter_map',
    idle_flush: atLeast(release, 5, 13) ? 'kernel_walk' : 'loader_scan',
    rss: atLeast(release, 6, 2) ? 'percpu_sum' : 'atomic',
  };
}
