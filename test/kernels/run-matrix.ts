/**
 * `npm run test:kernels`: the kernel smoke (test/kernels/smoke.test.ts) natively on the host
 * kernel, then in a VM per entry of VM_RUNS (Debian kernels fetched and cached by
 * prepare-kernel.sh), one after another. Prints one table, check x kernel, writes
 * test/results/kernels.json, and exits non-zero when any check failed or any VM gave no result.
 * PERFCATCH_KERNELS=6.1,6.12x12 runs a subset (the host always runs: the VMs' CPU tolerance
 * is scaled by the host's figures); PERFCATCH_VM_ACCEL=kvm|tcg skips the probe.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, release as hostRelease } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../harness/agent.ts';
import { buildThreadCpuAddon } from '../harness/runtimes.ts';
import type { CheckLine } from './checks-reporter.ts';
import { kernelById, VM_RUNS, type VmRun } from './kernels.ts';
import { bootVm, chooseAccel, kernelImage, type Accel } from './vm.ts';
import { printReport, type RunResult } from './matrix-report.ts';

const RESULTS = join(ROOT, 'test', 'results', 'kernels');
const KERNEL_CACHE = process.env.PERFCATCH_KERNEL_CACHE || join(homedir(), '.cache', 'perfcatch', 'kernels');
const PEER_CACHE = process.env.PERFCATCH_PEER_CACHE || join(homedir(), '.cache', 'perfcatch', 'peers');
/** Per VM, boot included: TCG runs user space 10-30x slower than the host. */
const VM_TIMEOUT_MS: Record<Accel, number> = { tcg: 20 * 60_000, kvm: 5 * 60_000 };
/** PERFCATCH_TEST_TIME_SCALE in the guest: start-up and wait deadlines only (harness/ports.ts). */
const TIME_SCALE: Record<Accel, number> = { tcg: 5, kvm: 2 };
const SMOKE = 'test/kernels/smoke.test.ts';

/** The kernel, with its vCPU count when it is not the usual one (1 or 2). */
function runLabel(r: VmRun): string {
  return r.cpus <= 2 ? r.kernel : `${r.kernel}x${r.cpus}`;
}

function selected(label: string): boolean {
  const only = process.env.PERFCATCH_KERNELS;
  return !only || only.split(',').map((s) => s.trim()).includes(label);
}

/** The node --test arguments for the smoke, shared by the host run and guest.sh's. */
function smokeArgs(out: string): string[] {
  return [
    '--test',
    '--test-concurrency=1',
    '--test-timeout=1200000',
    '--test-reporter=spec',
    `--test-reporter-destination=${join(out, 'smoke.log')}`,
    `--test-reporter=${join(ROOT, 'test', 'kernels', 'checks-reporter.ts')}`,
    `--test-reporter-destination=${join(out, 'checks.jsonl')}`,
    SMOKE,
  ];
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

function freshDir(label: string): string {
  const dir = join(RESULTS, label);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** What the smoke left in `out`: its checks, its measured numbers, its exit code. */
function collect(out: string): Pick<RunResult, 'checks' | 'measured' | 'problem'> {
  const checksFile = join(out, 'checks.jsonl');
  const checks: CheckLine[] = existsSync(checksFile)
    ? readFileSync(checksFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as CheckLine)
        // The suite's own line only when its set-up failed (its checks say "cancelled" then).
        .filter((c) => c.nesting > 0 || (!c.ok && !/subtests? failed/.test(c.error ?? '')))
    : [];
  const measuredFile = join(out, 'measured.json');
  const measured = existsSync(measuredFile) ? (JSON.parse(readFileSync(measuredFile, 'utf8')) as Record<string, unknown>) : null;
  const codeFile = join(out, 'exit-code');
  const code = existsSync(codeFile) ? readFileSync(codeFile, 'utf8').trim() : null;
  let problem: string | undefined;
  if (checks.length === 0) problem = `the smoke reported no checks (see ${out})`;
  else if (code !== null && code !== '0' && checks.every((c) => c.ok)) problem = `the smoke exited ${code} with every check passing (see ${out})`;
  return { checks, measured, problem };
}

function printSmokeLog(out: string): void {
  const smokeLog = join(out, 'smoke.log');
  if (existsSync(smokeLog)) process.stdout.write(readFileSync(smokeLog, 'utf8'));
}

/** A VM that gave no checks: what it left, since CI keeps only this output. */
function printNoChecks(out: string, exitCode: number | null): void {
  console.log(`== no checks: virtme-run exited ${exitCode}`);
  for (const f of ['guest.log', 'console.log']) {
    const file = join(out, f);
    if (!existsSync(file)) {
      console.log(`== ${f}: absent (the guest ${f === 'guest.log' ? 'never ran guest.sh' : 'wrote no console'})`);
      continue;
    }
    const text = readFileSync(file, 'latin1');
    console.log(`== last 4 KB of ${f}:\n${text.slice(-4096)}`);
  }
}

async function runHost(): Promise<RunResult> {
  const out = freshDir('host');
  const t0 = Date.now();
  const child = spawn(process.execPath, smokeArgs(out), { cwd: ROOT, stdio: 'inherit', env: { ...process.env, PERFCATCH_SMOKE_OUT: out } });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  writeFileSync(join(out, 'exit-code'), `${code}\n`);
  printSmokeLog(out);
  return { label: 'host', release: hostRelease(), cpus: null, accel: 'native', seconds: (Date.now() - t0) / 1000, ...collect(out) };
}

function prepareKernel(id: string): string {
  const k = kernelById(id);
  const r = spawnSync('bash', [join(ROOT, 'test', 'kernels', 'prepare-kernel.sh'), k.suite, k.pinned, k.fallback], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, PERFCATCH_KERNEL_CACHE: KERNEL_CACHE },
  });
  const release = r.stdout.trim().split('\n').pop();
  if (r.status !== 0 || !release) throw new Error(`could not prepare kernel ${id} (prepare-kernel.sh exited ${r.status})`);
  return release;
}

/** The host run's /hello CPU per server: the VMs' smoke scales its time-based tolerance by it. */
function hostHelloCpuMs(host: RunResult | undefined): Record<string, number> {
  const servers = (host?.measured?.servers ?? {}) as Record<string, { helloCpuMs?: number }>;
  return Object.fromEntries(Object.entries(servers).flatMap(([k, v]) => (typeof v.helloCpuMs === 'number' ? [[k, v.helloCpuMs]] : [])));
}

async function runVm(run: VmRun, release: string, accel: Accel, hostHello: Record<string, number>): Promise<RunResult> {
  const label = runLabel(run);
  const out = freshDir(label);
  // The guest starts with a bare environment: pass what the harness reads.
  const command = [process.execPath, ...smokeArgs(out)].map(shellQuote).join(' ');
  const env = [
    `PERFCATCH_PEER_CACHE=${shellQuote(PEER_CACHE)}`,
    `PERFCATCH_TEST_TIME_SCALE=${TIME_SCALE[accel]}`,
    `PERFCATCH_SMOKE_HOST_HELLO_MS=${shellQuote(JSON.stringify(hostHello))}`,
    ...(run.cpuReportedOnly ? [`PERFCATCH_SMOKE_CPU_REPORTED_ONLY=${shellQuote(run.cpuReportedOnly)}`] : []),
  ].join(' ');
  const script = `${env} sh ${shellQuote(join(ROOT, 'test', 'kernels', 'guest.sh'))} ${shellQuote(ROOT)} ${shellQuote(out)} ${command}`;
  console.log(`== ${label}: booting ${release} with ${run.cpus} vCPUs (${accel})`);
  const boot = await bootVm({
    kimg: kernelImage(KERNEL_CACHE, release),
    cpus: run.cpus,
    accel,
    rwdir: out,
    script,
    consoleLog: join(out, 'console.log'),
    timeoutMs: VM_TIMEOUT_MS[accel],
  });
  const result: RunResult = { label, release, cpus: run.cpus, accel, seconds: boot.seconds, ...collect(out) };
  if (boot.timedOut) result.problem = `the VM did not finish within ${VM_TIMEOUT_MS[accel] / 60_000} min (see ${out})`;
  printSmokeLog(out);
  if (result.checks.length === 0) printNoChecks(out, boot.exitCode);
  console.log(`== ${label}: ${boot.seconds.toFixed(0)} s`);
  return result;
}

async function main(): Promise<number> {
  const t0 = Date.now();
  mkdirSync(RESULTS, { recursive: true });
  // The guest's root is read-only: everything it runs must be built here first.
  for (const f of ['dist/cli.js', 'build/perfcatch.bpf.o', 'loader/target/release/perfcatch-loader']) {
    if (!existsSync(join(ROOT, f))) throw new Error(`${f} is missing: run 'npm run build' first`);
  }
  buildThreadCpuAddon();

  const results: RunResult[] = [];
  const runs = VM_RUNS.filter((r) => selected(runLabel(r)));
  // The VMs need the host's figures (hostHelloCpuMs), so the host runs whenever they do.
  if (selected('host') || runs.length) {
    console.log(`== host: ${hostRelease()} (native)`);
    results.push(await runHost());
  }
  if (runs.length) {
    const hostHello = hostHelloCpuMs(results[0]);
    console.log(`== host /hello CPU per server (ms): ${JSON.stringify(hostHello)}`);
    const releases = new Map<string, string>();
    for (const id of new Set(runs.map((r) => r.kernel))) releases.set(id, prepareKernel(id));
    const first = releases.get(runs[0]!.kernel)!;
    const { accel, why } = await chooseAccel(kernelImage(KERNEL_CACHE, first), RESULTS);
    console.log(`== VMs use ${accel.toUpperCase()}: ${why}`);
    for (const run of runs) {
      let result = await runVm(run, releases.get(run.kernel)!, accel, hostHello);
      // A guest that never reached guest.sh (qemu or the boot failed) has tested nothing: one
      // more boot, said aloud. A guest that ran the smoke is never run again.
      if (result.checks.length === 0 && !existsSync(join(RESULTS, runLabel(run), 'guest.log'))) {
        console.log(`== ${runLabel(run)}: the guest never ran guest.sh; booting it once more`);
        result = await runVm(run, releases.get(run.kernel)!, accel, hostHello);
      }
      results.push(result);
    }
  }
  const failed = printReport(results, (Date.now() - t0) / 1000);
  writeFileSync(join(ROOT, 'test', 'results', 'kernels.json'), JSON.stringify(results, null, 2) + '\n');
  return failed ? 1 : 0;
}

if (spawnSync('virtme-run', ['--help'], { stdio: 'ignore' }).error && VM_RUNS.some((r) => selected(runLabel(r)))) {
  console.error('virtme-run not found: run scripts/setup.sh (qemu-system-x86, kmod, busybox-static, virtme-ng)');
  process.exit(2);
}
process.exitCode = await main();
