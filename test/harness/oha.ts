/**
 * oha, the fixed-rate HTTP load generator of the bench's rate scenarios (run.ts d and f,
 * live-cost.ts): `cargo install oha` once, on first use, since Debian does not package it.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export function ohaBinary(): string {
  const bin = join(process.env.HOME ?? '/root', '.cargo/bin/oha');
  if (!existsSync(bin)) {
    console.error('bench: installing oha (cargo install oha, once)');
    execFileSync('cargo', ['install', 'oha', '--locked'], { stdio: 'inherit' });
  }
  return bin;
}
