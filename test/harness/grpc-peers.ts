/**
 * gRPC peers other than Node's (issue 12): grpc-go (test/servers/grpc-go: server and load
 * client, go build of a committed go.mod/go.sum; scripts/setup.sh warms the module cache) and
 * grpcio (test/servers/grpcio: a venv of a frozen requirements.txt). Built or installed once
 * into the framework cache, keyed by the hash of the files that pin them.
 *
 * Both servers serve perfcatch.test.Echo and append one JSON line per call to a truth file
 * (what they decided and, for grpc-go, what its stats handler counted on the wire); the Go
 * client does the same on its side.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './agent.ts';
import { frameworkCache, pythonVenv } from './frameworks.ts';
import { startServer, spawnTracked, type Spawned } from './processes.ts';
import { buildOnce, hashFiles, run } from './runtimes.ts';

const GO_SOURCES = join(ROOT, 'test', 'servers', 'grpc-go');
const GRPCIO_SOURCES = join(ROOT, 'test', 'servers', 'grpcio');
const GO_BIN_DIR = '/usr/local/go/bin';

/** One line of a server's truth file. */
export interface ServerCall {
  id: string;
  method: string;
  code: number;
  /** grpc-go only: its stats handler's wire lengths (HPACK block of the request HEADERS; messages with their 5-byte prefix). */
  in_header_wire?: number;
  in_payload_wire?: number;
  out_payload_wire?: number;
  out_messages?: number;
}

/** One line of the Go client's truth file. */
export interface ClientCall {
  id: string;
  code: number;
  messages?: number;
  bytes?: number;
}

/** The grpc-peer binary (server and client). */
export function buildGrpcGo(): string {
  const hash = hashFiles(['main.go', 'go.mod', 'go.sum'].map((f) => join(GO_SOURCES, f)));
  const dir = buildOnce(join(frameworkCache(), `grpc-go-${hash}`), (tmp) => {
    mkdirSync(tmp, { recursive: true });
    const path = `${process.env.PATH ?? ''}:${GO_BIN_DIR}`;
    run('go', ['build', '-mod=readonly', '-o', join(tmp, 'grpc-peer'), '.'], { cwd: GO_SOURCES, env: { ...process.env, PATH: path, GOTOOLCHAIN: 'local', CGO_ENABLED: '0' } });
  });
  return join(dir, 'grpc-peer');
}

export type GrpcServer = Spawned & { port: number; name: string };

export async function startGrpcGoServer(truthFile: string): Promise<GrpcServer> {
  return { ...(await startServer(buildGrpcGo(), ['server', truthFile])), name: 'grpc-go' };
}

export async function startGrpcioServer(truthFile: string): Promise<GrpcServer> {
  const venv = pythonVenv('grpcio', join(GRPCIO_SOURCES, 'requirements.txt'));
  return { ...(await startServer(join(venv, 'bin', 'python'), [join(GRPCIO_SOURCES, 'server.py'), truthFile])), name: 'grpcio' };
}

/** Runs the Go client to the end: `n` unary calls, `concurrency` at a time, on one connection. */
export async function runGoUnary(port: number, n: number, concurrency: number, prefix: string, truthFile: string): Promise<void> {
  await runClient(['unary', `127.0.0.1:${port}`, String(n), String(concurrency), prefix, truthFile]);
}

/** `calls` concurrent server-streaming calls of `messages` messages of `size` bytes, on one connection. */
export async function runGoStream(port: number, calls: number, messages: number, size: number, prefix: string, truthFile: string): Promise<void> {
  await runClient(['stream', `127.0.0.1:${port}`, String(calls), String(messages), String(size), prefix, truthFile]);
}

async function runClient(args: string[]): Promise<void> {
  const c = spawnTracked(buildGrpcGo(), args);
  const code = await c.exited;
  if (code !== 0) throw new Error(`grpc-peer ${args[0]} exited ${code}: ${c.output()}`);
}

export function readJsonLines<T>(file: string): T[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as T);
}
