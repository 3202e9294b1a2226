/** Runs the built `perfcatch` bin (dist/cli.js) as users type it (errors: one-line-error.ts). */
import { spawn } from 'node:child_process';
import { CLI } from './agent.ts';
import type { CliOutcome } from './one-line-error.ts';

export type CliResult = CliOutcome;

/** Runs `perfcatch <args>` with no TTY, no PERFCATCH_API / PERFCATCH_DB_PATH unless `env` sets them. */
export function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, PERFCATCH_API: '', PERFCATCH_DB_PATH: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
