/**
 * Real web frameworks for the framework matrix (test/e2e/framework-matrix.test.ts), each
 * pinned in test/servers/frameworks/<name>/ and installed or built once into
 * ~/.cache/perfcatch/frameworks (PERFCATCH_FRAMEWORK_CACHE), keyed by the hash of the files
 * that pin it, so only the first run on a machine (or after an edit) pays:
 *   express   npm ci of a committed lockfile          (Node 24, the test's own binary)
 *   python    venv + pip of a frozen requirements.txt  (aiohttp; Flask under gunicorn)
 *   gin       go build of a committed go.mod/go.sum
 *   jetty     mvn dependency:copy-dependencies, then javac
 *
 * Every app appends one JSON line per request to PERFCATCH_TRUTH_FILE: a TruthLine.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync, copyFileSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ROOT } from './agent.ts';
import { waitFor } from './ports.ts';
import { spawnTracked, type Spawned } from './processes.ts';
import { buildOnce, buildThreadCpuAddon, hashFiles, run } from './runtimes.ts';

/** What an app measured itself for one request. */
export interface TruthLine {
  /** The request's X-Request-Id. */
  id: string;
  /** The worker process and OS thread that ran the handler. */
  pid: number;
  tid: number;
  /** The handler's own thread CPU (summed over its synchronous segments), ns. */
  cpu_ns: number;
  /** Epoch ns, as strings (beyond 2^53). */
  wall_start_ns: string;
  wall_end_ns: string;
  /** The handler ran work on other threads at once (its CPU may exceed its wall time). */
  parallel: boolean;
  /** Outbound calls of a handler that made some, in order; new_connection null if unknown. */
  deps?: { path: string; new_connection: boolean | null }[];
}

export interface RunningFramework {
  name: string;
  port: number;
  /** Processes that serve requests (gunicorn: its workers; else the one server process). */
  workerPids: number[];
  /** Every process of the server (gunicorn: master and workers). */
  allPids: number[];
  output: () => string;
  stop: () => Promise<void>;
}

const SOURCES = join(ROOT, 'test', 'servers', 'frameworks');
const GO_BIN_DIR = '/usr/local/go/bin';

export function frameworkCache(): string {
  return process.env.PERFCATCH_FRAMEWORK_CACHE || join(homedir(), '.cache', 'perfcatch', 'frameworks');
}

/** Express and its dependencies, from the committed lockfile; returns node_modules. */
export function installExpress(): string {
  const src = join(SOURCES, 'express');
  const pins = [join(src, 'package.json'), join(src, 'package-lock.json')];
  const dir = buildOnce(join(frameworkCache(), `express-${hashFiles(pins)}`), (tmp) => {
    mkdirSync(tmp, { recursive: true });
    for (const f of pins) copyFileSync(f, join(tmp, f.slice(src.length + 1)));
    run('npm', ['ci', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: tmp });
  });
  return join(dir, 'node_modules');
}

/**
 * A venv with the frozen requirements. A venv is not relocatable (its scripts name their
 * interpreter by absolute path), so it is built in place and marked complete at the end.
 */
export function installPythonVenv(): string {
  return pythonVenv('python', join(SOURCES, 'python', 'requirements.txt'));
}

/** A venv named `name` with the frozen requirements `req` (also the grpcio peer's). */
export function pythonVenv(name: string, req: string): string {
  const version = spawnSync('python3', ['-c', 'import sys; print(sys.version.split()[0])'], { encoding: 'utf8' }).stdout.trim();
  const dir = join(frameworkCache(), `${name}-${version}-${hashFiles([req])}`);
  const done = join(dir, '.complete');
  if (existsSync(done)) return dir;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(frameworkCache(), { recursive: true });
  run('python3', ['-m', 'venv', dir]);
  run(join(dir, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', '-r', req]);
  writeFileSync(done, '');
  return dir;
}

/** The gin app's binary. */
export function buildGin(): string {
  const src = join(SOURCES, 'gin');
  const hash = hashFiles(['main.go', 'go.mod', 'go.sum'].map((f) => join(src, f)));
  const dir = buildOnce(join(frameworkCache(), `gin-${hash}`), (tmp) => {
    mkdirSync(tmp, { recursive: true });
    const path = `${process.env.PATH ?? ''}:${GO_BIN_DIR}`;
    run('go', ['build', '-o', join(tmp, 'gin-app'), '.'], { cwd: src, env: { ...process.env, PATH: path, GOTOOLCHAIN: 'local', CGO_ENABLED: '0' } });
  });
  return join(dir, 'gin-app');
}

/** Jetty's jars (lib/) and the compiled app (classes/); returns the class path. */
export function buildJetty(): string {
  const src = join(SOURCES, 'jetty');
  const files = [join(src, 'pom.xml'), join(src, 'FrameworkServer.java')];
  const dir = buildOnce(join(frameworkCache(), `jetty-${hashFiles(files)}`), (tmp) => {
    mkdirSync(join(tmp, 'classes'), { recursive: true });
    run('mvn', ['-q', '-B', '-f', join(src, 'pom.xml'), 'dependency:copy-dependencies', `-DoutputDirectory=${join(tmp, 'lib')}`]);
    run('javac', ['-d', join(tmp, 'classes'), '-cp', `${join(tmp, 'lib')}/*`, join(src, 'FrameworkServer.java')]);
  });
  return `${join(dir, 'classes')}:${join(dir, 'lib')}/*`;
}

function childPids(pid: number): number[] {
  const r = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

/**
 * Spawns a server and waits for its "LISTENING <port>" line and, for a prefork server, for
 * its `workers` child processes. A server that does not get there in time is stopped, so a
 * failed start leaves nothing running.
 */
async function startFramework(
  name: string,
  cmd: string,
  args: string[],
  opts: { env: Record<string, string>; cwd?: string; workers?: number },
): Promise<RunningFramework> {
  const s: Spawned = spawnTracked(cmd, args, { env: { ...process.env, ...opts.env }, cwd: opts.cwd });
  let port = 0;
  createInterface({ input: s.child.stdout! }).on('line', (line) => {
    const l = /^LISTENING (\d+)/.exec(line);
    if (l) port = Number(l[1]);
  });
  let workers: number[] = [];
  try {
    await waitFor(
      `${name} to listen`,
      () => {
        if (s.child.exitCode !== null) throw new Error(`${name} exited ${s.child.exitCode}: ${s.output()}`);
        if (!port) return undefined;
        if (opts.workers) {
          workers = childPids(s.pid);
          if (workers.length < opts.workers) return undefined;
        }
        return true;
      },
      60_000,
      50,
    );
  } catch (err) {
    await s.stop('SIGTERM');
    throw new Error(`${String(err)}\n${s.output()}`);
  }
  return {
    name,
    port,
    workerPids: opts.workers ? workers : [s.pid],
    allPids: [s.pid, ...workers],
    output: s.output,
    stop: async () => {
      await s.stop('SIGTERM');
    },
  };
}

export function startExpress(env: Record<string, string>): Promise<RunningFramework> {
  const modules = installExpress();
  return startFramework('express', process.execPath, [join(SOURCES, 'express', 'app.mjs'), '0'], {
    env: { ...env, FRAMEWORK_NODE_MODULES: modules, PERFCATCH_THREAD_CPU_ADDON: buildThreadCpuAddon() },
  });
}

export function startAiohttp(env: Record<string, string>): Promise<RunningFramework> {
  const venv = installPythonVenv();
  const dir = join(SOURCES, 'python');
  return startFramework('aiohttp', join(venv, 'bin', 'python'), [join(dir, 'aiohttp_app.py'), '0'], { env, cwd: dir });
}

/** Flask under gunicorn (3 sync workers), started through its script as a user would. */
export function startGunicornFlask(env: Record<string, string>): Promise<RunningFramework> {
  const venv = installPythonVenv();
  const dir = join(SOURCES, 'python');
  return startFramework('gunicorn-flask', join(venv, 'bin', 'gunicorn'), ['-c', join(dir, 'gunicorn.conf.py')], { env, cwd: dir, workers: 3 });
}

export function startGin(env: Record<string, string>): Promise<RunningFramework> {
  return startFramework('gin', buildGin(), ['0'], { env });
}

export function startJetty(env: Record<string, string>): Promise<RunningFramework> {
  const cp = buildJetty();
  return startFramework('jetty', 'java', ['-XX:+UseSerialGC', '-Xmx256m', '-cp', cp, 'FrameworkServer', '0'], { env });
}

/** Truth lines by request id; a later line for the same id wins (none is expected). */
export function readTruth(file: string): Map<string, TruthLine> {
  const out = new Map<string, TruthLine>();
  if (!existsSync(file)) return out;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const t = JSON.parse(line) as TruthLine;
    out.set(t.id, t);
  }
  return out;
}

/**
 * ns on CPU of every thread of the given processes, from /proc/<pid>/task/<tid>/schedstat;
 * with `namePrefix`, only the threads whose comm starts with it.
 */
export function readSchedstat(pids: number[], namePrefix?: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pids) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue; // exited
    }
    for (const tid of tids) {
      try {
        if (namePrefix && !readFileSync(`/proc/${pid}/task/${tid}/comm`, 'latin1').startsWith(namePrefix)) continue;
        const first = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'latin1').split(' ')[0];
        out.set(Number(tid), Number(first));
      } catch {
        // the thread exited between the listing and the read
      }
    }
  }
  return out;
}

/** What ps and /proc/<pid>/comm show for a process. */
export function commOf(pid: number): string {
  return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
}
