/**
 * Where the agent's in-kernel time goes, by eBPF source line: perf samples every CPU
 * (cpu-clock, with call chains) while a load runs, and each sample taken in one of the
 * agent's programs, or in a kernel function one of them called (a map lookup, a ring buffer
 * reserve, a user-memory read), is charged to the source line the JIT line info names for the
 * innermost program frame (bpf-lines.c, compiled here on first use). Used by live-cost.ts
 * --bpf-profile.
 *
 * Shares, not nanoseconds: kernel.bpf_stats (live-cost --bpf) has the absolute cost per
 * program. cpu-clock samples cannot land where interrupts are off, so tp_btf/sched_switch
 * (run with the runqueue locked) is missing here.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { peerCache } from '../harness/runtimes.ts';

const SOURCE = fileURLToPath(new URL('./bpf-lines.c', import.meta.url));
const BPF_PROG_SYMBOL = /^bpf_prog_[0-9a-f]+_(\w+)/;

/** The helper binary, rebuilt when its source is newer. */
function linesTool(): string {
  const dir = path.join(peerCache(), 'tools');
  const bin = path.join(dir, 'bpf-lines');
  let fresh = false;
  try {
    fresh = statSync(bin).mtimeMs >= statSync(SOURCE).mtimeMs;
  } catch {}
  if (!fresh) {
    mkdirSync(dir, { recursive: true });
    execFileSync('cc', ['-O1', '-Wall', SOURCE, '-o', bin, '-lbpf']);
  }
  return bin;
}

interface LineRange {
  address: bigint;
  program: string;
  line: string;
}

/** Every JIT line range of the given programs, by address. */
function lineTable(programs: Map<number, string>): LineRange[] {
  const tool = linesTool();
  const ranges: LineRange[] = [];
  for (const [id, program] of programs) {
    let out: string;
    try {
      out = execFileSync(tool, [String(id)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      continue; // unloaded meanwhile, or no line info
    }
    for (const l of out.split('\n')) {
      if (!l.startsWith('L ')) continue;
      const space = l.indexOf(' ', 2);
      const line = l.slice(space + 1).replace(/^.*\/bpf\/(\.\/)?/, '').replace(/\t\s*/, '  ');
      ranges.push({ address: BigInt(`0x${l.slice(2, space)}`), program, line });
    }
  }
  return ranges.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
}

function rangeAt(table: LineRange[], address: bigint): LineRange | null {
  let lo = 0;
  let hi = table.length - 1;
  let found: LineRange | null = null;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (table[mid]!.address <= address) {
      found = table[mid]!;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

/**
 * Samples for `seconds` and returns the report: samples per program, the `top` source lines,
 * and the kernel functions the programs spent their samples in.
 */
export function bpfLineProfile(programs: Map<number, string>, seconds: number, top = 30): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'bpf-profile-'));
  try {
    const data = path.join(dir, 'perf.data');
    execFileSync('perf', ['record', '-q', '-a', '-g', '-e', 'cpu-clock', '-F', '25000', '-o', data, '--', 'sleep', String(seconds)], { stdio: 'ignore' });
    const table = lineTable(programs);
    // Only the samples in an eBPF program, each cut after its first eBPF frame: the whole
    // script of 25 s at 25 kHz passes the 512 MB a JavaScript string may hold.
    const onlyPrograms = `BEGIN { RS = ""; ORS = "\\n\\n" } /bpf_prog_/ { n = split($0, f, "\\n"); out = ""; for (i = 1; i <= n; i++) { out = out f[i] "\\n"; if (f[i] ~ /bpf_prog_/) break } print out }`;
    const script = execFileSync('sh', ['-c', `perf script -i '${data}' -F ip,sym 2>/dev/null | awk '${onlyPrograms}'`], { encoding: 'utf8', maxBuffer: 1 << 29, stdio: ['ignore', 'pipe', 'ignore'] });
    const byProgram = new Map<string, number>();
    const byLine = new Map<string, number>();
    const byCallee = new Map<string, number>();
    let total = 0;
    for (const sample of script.split('\n\n')) {
      const frames = sample
        .trim()
        .split('\n')
        .map((f) => f.trim().split(/\s+/, 2) as [string, string?]);
      for (let i = 0; i < frames.length; i++) {
        const [ip, sym] = frames[i]!;
        const m = sym ? BPF_PROG_SYMBOL.exec(sym) : null;
        if (!m) continue;
        // A caller frame holds a return address: the call is the instruction before it.
        const range = rangeAt(table, BigInt(`0x${ip}`) - (i > 0 ? 1n : 0n));
        const program = range?.program ?? m[1]!;
        total++;
        byProgram.set(program, (byProgram.get(program) ?? 0) + 1);
        const line = `${program.padEnd(16)} ${range?.line ?? '(no line info)'}`;
        byLine.set(line, (byLine.get(line) ?? 0) + 1);
        if (i > 0) {
          const callee = `${program.padEnd(16)} ${frames[0]![1] ?? '?'}`;
          byCallee.set(callee, (byCallee.get(callee) ?? 0) + 1);
        }
        break;
      }
    }
    const pct = (n: number) => `${((100 * n) / Math.max(total, 1)).toFixed(1).padStart(5)}%`;
    const rows = (m: Map<string, number>, n: number) =>
      [...m]
        .sort((a, b) => b[1] - a[1])
        .slice(0, n)
        .map(([k, v]) => `${pct(v)}  ${k}`);
    return [
      `eBPF samples: ${total} (shares of the agent's sampled in-kernel time; sched_switch not sampled)`,
      ...rows(byProgram, 12),
      `-- source lines (with the kernel functions they called)`,
      ...rows(byLine, top),
      `-- kernel functions called by the programs`,
      ...rows(byCallee, 15),
    ].join('\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
