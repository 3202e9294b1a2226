/** Child processes for tests: ground-truth servers, the agent, peers. Killed at exit. */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createInterface } from 'node:readline';
import { scaledTimeout } from './ports.ts';

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export interface Spawned {
  child: ChildProcess;
  pid: number;
  output: () => string;
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
  exited: Promise<number | null>;
}

export function spawnTracked(cmd: string, args: string[], opts: SpawnOptions = {}): Spawned {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...opts });
  live.add(child);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => {
      live.delete(child);
      resolve(code);
    });
    child.on('error', () => resolve(-1));
  });
  return {
    child,
    pid: child.pid ?? -1,
    output: () => out,
    exited,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Starts a server that prints "LISTENING <port>" and waits for that line. */
export async function startServer(cmd: string, args: string[], env: Record<string, string> = {}): Promise<Spawned & { port: number }> {
  const s = spawnTracked(cmd, args, { env: { ...process.env, ...env } });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`${cmd} did not start: ${s.output()}`));
      void s.stop(); // nobody else holds it to stop it
    }, scaledTimeout(15_000));
    createInterface({ input: s.child.stdout! }).on('line', (line) => {
      const m = /^LISTENING (\d+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    void s.exited.then((code) => reject(new Error(`${cmd} exited ${code}: ${s.output()}`)));
  });
  return { ...s, port };
}
