/** test/servers/node-h2-server.mjs: an h2c server and a gRPC server in one process. */
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
