/**
 * Compiles a C program against the bpf/ headers for the host and runs it: for the headers
 * kept free of kernel types and helpers so that the very code the eBPF object includes can be
 * checked here (bpf/flush_due.bpf.h, bpf/cpu_clock.bpf.h). Returns its stdout lines.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BPF_DIR = fileURLToPath(new URL('../../bpf', import.meta.url));

export function runHostC(source: string): string[] {
  const dir = mkdtempSync(path.join(tmpdir(), 'host-c-'));
  try {
    const src = path.join(dir, 'main.c');
    const bin = path.join(dir, 'main');
    writeFileSync(src, source);
    execFileSync('clang', ['-O2', '-Wall', '-Werror', `-I${BPF_DIR}`, src, '-o', bin]);
    return execFileSync(bin, { encoding: 'utf8' }).trim().split('\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
