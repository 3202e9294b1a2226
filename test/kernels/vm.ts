/**
 * Boots a Debian kernel with virtme-ng over the host's root filesystem (read-only 9p) and runs
 * test/kernels/guest.sh in it. KVM guests fail on some hosts (qemu's `-cpu host` aborts, other
 * CPU models hang), so the accelerator is probed once: KVM when a probe VM boots, else TCG.
 */
import { spawn } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, mkdirSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { VM_MEMORY_MB } from './kernels.ts';

export type Accel = 'kvm' | 'tcg';

const KVM_FAILURE = /KVM internal error|kvm run failed|failed to initialize kvm/i;

export interface BootResult {
  /** null when the VM was killed at the deadline. */
  exitCode: number | null;
  timedOut: boolean;
  seconds: number;
}

function consoleTail(file: string, bytes = 8192): string {
  const fd = openSync(file, 'r');
  try {
    const size = statSync(file).size;
    const buf = Buffer.alloc(Math.min(bytes, size));
    readSync(fd, buf, 0, buf.length, size - buf.length);
    return buf.toString('latin1');
  } finally {
    closeSync(fd);
  }
}

export function kernelImage(cacheDir: string, release: string): string {
  return join(cacheDir, release, 'boot', `vmlinuz-${release}`);
}

/** Runs virtme-run; the console (boot messages, guest errors) goes to `consoleLog`. */
export function bootVm(opts: {
  kimg: string;
  cpus: number;
  accel: Accel;
  rwdir: string;
  script: string;
  consoleLog: string;
  timeoutMs: number;
}): Promise<BootResult> {
  const args = ['--kimg', opts.kimg, '--mods', 'auto', '--force-9p', '--memory', String(VM_MEMORY_MB), '--cpus', String(opts.cpus)];
  if (opts.accel === 'tcg') args.push('--disable-kvm');
  // Without --show-boot-console virtme cannot wire the script's I/O ports, and the script
  // does not run at all; its output is lost either way, hence the rwdir.
  args.push('--rwdir', opts.rwdir, '--show-boot-console', '--script-sh', opts.script);
  // Under TCG the guest's clocks follow the instructions it executes (icount, 1 ns each), not
  // the host's wall clock: otherwise every moment the host deschedules a vCPU thread (other
  // VMs, builds) is on-CPU time for whichever guest thread was running, inside or outside a
  // request's window, and CPU errors of tens of ms come from the host, not the kernel.
  // (icount runs the vCPUs round-robin on one host thread.) Must be the last option.
  if (opts.accel === 'tcg') args.push('--qemu-opts', '-icount', 'shift=0,sleep=on');
  // A file, not a pipe: virtme wires the guest's console through /proc/self/fd, which a pipe
  // does not offer (it then warns and loses output).
  const out = openSync(opts.consoleLog, 'w');
  const t0 = Date.now();
  // Its own process group, so a deadline kills qemu along with virtme-run.
  const child = spawn('virtme-run', args, { stdio: ['ignore', out, out], detached: true });
  closeSync(out);
  const kill = () => {
    if (child.pid && child.exitCode === null) process.kill(-child.pid, 'SIGKILL');
  };
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    kill();
  }, opts.timeoutMs);
  // qemu stops the guest on a KVM emulation failure and waits forever: end it at once.
  const watcher = setInterval(() => {
    if (KVM_FAILURE.test(consoleTail(opts.consoleLog))) kill();
  }, 1_000);
  return new Promise((resolve) => {
    const done = (exitCode: number | null) => {
      clearTimeout(timer);
      clearInterval(watcher);
      resolve({ exitCode, timedOut, seconds: (Date.now() - t0) / 1000 });
    };
    child.once('error', () => done(-1));
    child.once('exit', (code) => done(code));
  });
}

function kvmUsable(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * PERFCATCH_VM_ACCEL=kvm|tcg forces a choice; otherwise a probe VM with KVM must boot and run
 * a one-line script within `probeMs` (seconds under KVM; a failing KVM aborts or hangs).
 */
export async function chooseAccel(kimg: string, workDir: string, probeMs = 30_000): Promise<{ accel: Accel; why: string }> {
  const forced = process.env.PERFCATCH_VM_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return { accel: forced, why: 'PERFCATCH_VM_ACCEL' };
  if (forced && forced !== 'auto') throw new Error(`PERFCATCH_VM_ACCEL must be kvm, tcg or auto, not ${JSON.stringify(forced)}`);
  if (!kvmUsable()) return { accel: 'tcg', why: '/dev/kvm is not accessible' };
  const dir = join(workDir, 'kvm-probe');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const r = await bootVm({
    kimg,
    cpus: 1,
    accel: 'kvm',
    rwdir: dir,
    script: `echo ok > ${dir}/ok`,
    consoleLog: join(dir, 'console.log'),
    timeoutMs: probeMs,
  });
  if (existsSync(join(dir, 'ok'))) return { accel: 'kvm', why: `a KVM probe VM booted in ${r.seconds.toFixed(0)} s` };
  return { accel: 'tcg', why: r.timedOut ? `a KVM probe VM did not finish in ${probeMs / 1000} s` : `a KVM probe VM failed (exit ${r.exitCode}; ${join(dir, 'console.log')})` };
}
