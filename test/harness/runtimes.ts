/**
 * Ground-truth servers in several runtimes (Node, Python, Go, Java, nginx), all speaking the
 * same contract: see test/servers/*. Compiled servers (Go, Java) are built once per source
 * hash into the peer cache, so only the first run on a machine (or after an edit) pays.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ROOT } from './agent.ts';
import { freePort, waitFor } from './ports.ts';
import { spawnTracked, startServer, type Spawned } from './processes.ts';

export type RunningServer = Spawned & { port: number };

export interface RunningNginx {
  staticPort: number;
  proxyPort: number;
  /** Master pid first, then the worker pid(s). */
  pids: number[];
  /** The private directory holding nginx.conf, www/, error.log and temp paths. */
  dir: string;
  output: () => string;
  stop: () => Promise<void>;
}

const SERVERS = join(ROOT, 'test', 'servers');
const GO_BIN_DIR = '/usr/local/go/bin';

/** Where built peers and tools are kept between runs. */
export function peerCache(): string {
  return process.env.PERFCATCH_PEER_CACHE || join(homedir(), '.cache', 'perfcatch', 'peers');
}

export function hashFiles(files: string[]): string {
  const h = createHash('sha256');
  for (const f of files) h.update(f).update('\0').update(readFileSync(f)).update('\0');
  return h.digest('hex').slice(0, 16);
}

export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 300_000, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.error?.message}): ${r.stdout}${r.stderr}`);
}

/** Builds into a temp sibling and renames into place, so concurrent builders never see half a build. */
export function buildOnce(target: string, build: (tmp: string) => void): string {
  if (existsSync(target)) return target;
  mkdirSync(dirname(target), { recursive: true });
  const tmp = `${target}.tmp-${process.pid}-${Date.now()}`;
  try {
    build(tmp);
    try {
      renameSync(tmp, target);
    } catch (err) {
      if (!existsSync(target)) throw err; // someone else won the race: use theirs
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return target;
}

function pathWithGo(): string {
  const path = process.env.PATH ?? '';
  return path.split(':').includes(GO_BIN_DIR) ? path : `${path}:${GO_BIN_DIR}`;
}

/** Builds (or reuses) the CLOCK_THREAD_CPUTIME_ID addon for the Node server. */
export function buildThreadCpuAddon(): string {
  const src = join(SERVERS, 'node-thread-cpu', 'thread_cpu.c');
  const dir = buildOnce(join(peerCache(), `gt-node-thread-cpu-${hashFiles([src])}`), (tmp) => {
    mkdirSync(tmp, { recursive: true });
    run('gcc', ['-shared', '-fPIC', '-O2', '-Wall', '-o', join(tmp, 'thread_cpu.node'), src]);
  });
  return join(dir, 'thread_cpu.node');
}

/** Node http server (event loop), run under the test's own Node 24. */
export function startNodeServer(env: Record<string, string> = {}): Promise<RunningServer> {
  return startServer(process.execPath, [join(SERVERS, 'node-http-server.mjs'), '0'], {
    PERFCATCH_THREAD_CPU_ADDON: buildThreadCpuAddon(),
    ...env,
  });
}

/** Python ThreadingHTTPServer (one thread per connection). */
export function startPythonServer(env: Record<string, string> = {}): Promise<RunningServer> {
  return startServer('python3', [join(SERVERS, 'python_http_server.py'), '0'], env);
}

/** Builds (or reuses) a Go server under test/servers/<name> (modules from the Go module proxy, as go.sum pins them); returns the binary's path. */
function buildGo(name: string, binary: string): string {
  const src = join(SERVERS, name);
  const files = ['main.go', 'go.mod', 'go.sum'].map((f) => join(src, f)).filter((f) => existsSync(f));
  const dir = buildOnce(join(peerCache(), `${binary}-${hashFiles(files)}`), (tmp) => {
    mkdirSync(tmp, { recursive: true });
    const env = { ...process.env, PATH: pathWithGo(), GOTOOLCHAIN: 'local', CGO_ENABLED: '0' };
    run('go', ['build', '-o', join(tmp, binary), '.'], { cwd: src, env });
  });
  return join(dir, binary);
}

/** Builds (or reuses) test/servers/go; returns the binary's path. */
export function buildGoServer(): string {
  return buildGo('go', 'gt-go');
}

/** HTTP/2 cleartext Go server (golang.org/x/net/http2/h2c: Upgrade and prior knowledge). */
export function startGoH2cServer(env: Record<string, string> = {}): Promise<RunningServer> {
  return startServer(buildGo('go-h2c', 'h2c-go'), ['0'], env);
}

/** Go net/http server (goroutine per connection, handler locked to its OS thread). */
export function startGoServer(env: Record<string, string> = {}): Promise<RunningServer> {
  return startServer(buildGoServer(), ['0'], env);
}

/** Compiles (or reuses) test/servers/java; returns the class path directory. */
export function buildJavaServer(): string {
  const src = join(SERVERS, 'java', 'GroundTruthServer.java');
  return buildOnce(join(peerCache(), `gt-java-${hashFiles([src])}`), (tmp) => {
    mkdirSync(tmp, { recursive: true });
    run('javac', ['-d', tmp, src]);
  });
}

/** Java com.sun.net.httpserver.HttpServer on a fixed pool of 8 threads. */
export function startJavaServer(env: Record<string, string> = {}): Promise<RunningServer> {
  // nodelay: head and body are separate writes; without it Nagle adds the client's 40 ms ACK delay.
  const args = ['-Xss512k', '-XX:+UseSerialGC', '-Xmx256m', '-Dsun.net.httpserver.nodelay=true', '-cp', buildJavaServer(), 'GroundTruthServer', '0'];
  return startServer('java', args, env);
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function childPids(pid: number): number[] {
  const r = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

/**
 * nginx (master + 1 worker) with a static server over `staticFiles` (paths relative to the
 * document root) and a reverse proxy onto 127.0.0.1:`upstreamPort` with pooled keep-alive
 * upstream connections.
 */
export async function startNginx(opts: { upstreamPort: number; staticFiles: Record<string, Buffer | string> }): Promise<RunningNginx> {
  const dir = mkdtempSync(join(tmpdir(), 'perfcatch-nginx-'));
  mkdirSync(join(dir, 'www'), { recursive: true });
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  for (const [name, content] of Object.entries(opts.staticFiles)) {
    const file = join(dir, 'www', name.replace(/^\/+/, ''));
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, content);
  }
  const staticPort = await freePort();
  let proxyPort = await freePort();
  while (proxyPort === staticPort) proxyPort = await freePort();
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    readFileSync(join(SERVERS, 'nginx', 'nginx.conf.template'), 'utf8')
      .replaceAll('@DIR@', dir)
      .replaceAll('@STATIC_PORT@', String(staticPort))
      .replaceAll('@PROXY_PORT@', String(proxyPort))
      .replaceAll('@UPSTREAM_PORT@', String(opts.upstreamPort)),
  );
  const s = spawnTracked('/usr/sbin/nginx', ['-c', conf, '-g', 'daemon off;']);
  const errorLog = () => {
    try {
      return readFileSync(join(dir, 'error.log'), 'utf8');
    } catch {
      return '';
    }
  };
  const stop = async () => {
    await s.stop('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const workers = await waitFor(
      'nginx to listen',
      async () => {
        if (s.child.exitCode !== null) throw new Error(`nginx exited ${s.child.exitCode}: ${s.output()}${errorLog()}`);
        if (!(await accepts(staticPort)) || !(await accepts(proxyPort))) return undefined;
        const w = childPids(s.pid);
        return w.length > 0 ? w : undefined;
      },
      15_000,
      50,
    );
    return { staticPort, proxyPort, pids: [s.pid, ...workers], dir, output: () => s.output() + errorLog(), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
