/** Test servers of the HTTP/2 tests, started and waited for. */
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ROOT } from './agent.ts';
import { spawnTracked, type Spawned } from './processes.ts';

export async function startH2Server(): Promise<Spawned & { port: number; grpcPort: number }> {
  const s = spawnTracked(process.execPath, [join(ROOT, 'test', 'servers', 'node-h2-server.mjs')], { cwd: ROOT });
  const ports = await new Promise<[number, number]>((resolve, reject) => {
    let h2 = 0;
    const timer = setTimeout(() => reject(new Error(`h2 server did not start: ${s.output()}`)), 15_000);
    createInterface({ input: s.child.stdout! }).on('line', (line) => {
      const m = /^(LISTENING|GRPC) (\d+)/.exec(line);
      if (m?.[1] === 'LISTENING') h2 = Number(m[2]);
      if (m?.[1] === 'GRPC') {
        clearTimeout(timer);
        resolve([h2, Number(m[2])]);
      }
    });
  });
  return { ...s, port: ports[0], grpcPort: ports[1] };
}

/** Starts a test server script (test/servers/) and waits for the "<word> <port>" line it prints. */
export async function startScript(script: string, args: string[], word: string, env: Record<string, string>): Promise<Spawned & { port: number }> {
  const s = spawnTracked(process.execPath, [join(ROOT, 'test', 'servers', script), ...args], { cwd: ROOT, env: { ...process.env, ...env } });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not start: ${s.output()}`)), 15_000);
    createInterface({ input: s.child.stdout! }).on('line', (line) => {
      const m = new RegExp(`^${word} (\\d+)`).exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
  });
  return { ...s, port };
}
