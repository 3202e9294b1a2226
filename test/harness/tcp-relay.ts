/**
 * A TCP relay in front of a real peer that counts the bytes clients send through it: how a
 * test sees what compression did to an export, TLS or not, without looking inside it.
 */
import { createServer, connect, type AddressInfo, type Server } from 'node:net';

export interface TcpRelay {
  port: number;
  /** Bytes received from clients so far. */
  bytesFromClients(): number;
  close(): Promise<void>;
}

export async function startTcpRelay(targetPort: number): Promise<TcpRelay> {
  let bytes = 0;
  const sockets = new Set<{ destroy(): void }>();
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    client.pipe(upstream).on('error', () => client.destroy());
    upstream.pipe(client).on('error', () => upstream.destroy());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    bytesFromClients: () => bytes,
    close: async () => {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}
