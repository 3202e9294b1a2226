/**
 * The kernel the loader runs on, and the variant of each kernel-dependent part of the BPF
 * object that it chose from its feature probes (loader/src/features.rs): shown in the agent's
 * start line and in /health, so a user sees what their kernel runs.
 */
export interface KernelInfo {
  release: string | null;
  /** syscall_args: exit_regs | enter_map; idle_flush: kernel_walk | loader_scan | off;
   * rss: percpu_sum | atomic. Empty until the loader has started. */
  variants: Record<string, string>;
}

export function kernelOf(loaderInfo: Record<string, unknown> | null): KernelInfo {
  const release = typeof loaderInfo?.kernel === 'string' ? loaderInfo.kernel : null;
  const variants: Record<string, string> = {};
  const v = loaderInfo?.variants;
  if (v && typeof v === 'object') {
    for (const [k, val] of Object.entries(v)) if (typeof val === 'string') variants[k] = val;
  }
  return { release, variants };
}
