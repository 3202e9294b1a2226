/**
 * The Dockerfile, checked statically (no Docker engine in the test environment): the four
 * named stages in order, the toolchains they use, that the runtime stage is node:24-slim
 * without compilers and runs as a non-root user with the loader's file capabilities, that every
 * artifact it copies is one the repository's own build produces, at the path the agent looks
 * for it, that the entrypoint is the one `npm start` runs, and that .dockerignore keeps build
 * outputs out of the context but lets everything the stages copy in.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAgentArgs } from '../../src/config.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}
interface Stage {
  image: string;
  name: string;
  instructions: Instruction[];
}

/** Splits a Dockerfile into stages of instructions: continuations joined, comments dropped. */
function parseDockerfile(text: string): Stage[] {
  const instructions: Instruction[] = [];
  let pending: { text: string; line: number } | null = null;
  text.split('\n').forEach((raw, i) => {
    // Comment lines are dropped, also inside a continuation (as Docker does).
    if (/^\s*#/.test(raw)) return;
    if (pending === null && raw.trim() === '') return;
    const continued = /\\\s*$/.test(raw);
    const part = continued ? raw.replace(/\\\s*$/, '') : raw;
    pending = pending ? { text: `${pending.text} ${part.trim()}`, line: pending.line } : { text: part.trim(), line: i + 1 };
    if (continued) return;
    const m = /^([A-Za-z]+)\s+(.*)$/.exec(pending.text);
    assert.ok(m, `line ${pending.line}: not an instruction: ${pending.text}`);
    instructions.push({ keyword: m[1]!.toUpperCase(), args: m[2]!.trim(), line: pending.line });
    pending = null;
  });
  assert.equal(pending, null, 'the Dockerfile ends inside a continuation');
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      assert.ok(m, `line ${ins.line}: FROM ${ins.args}`);
      stages.push({ image: m[1]!, name: m[2] ?? '', instructions: [] });
    } else if (ins.keyword !== 'ARG' || stages.length > 0) {
      assert.ok(stages.length > 0, `line ${ins.line}: ${ins.keyword} before the first FROM`);
      stages.at(-1)!.instructions.push(ins);
    }
  }
  return stages;
}

/** The shell command of a shell-form RUN, without its --mount/--network flags. */
function runCommand(ins: Instruction): string {
  assert.ok(!ins.args.startsWith('['), `line ${ins.line}: exec-form RUN`);
  return ins.args.replace(/^(?:--\S+\s+)*/, '');
}

/** Packages named by `apt-get install` in a shell command. */
function aptInstalled(cmd: string): string[] {
  const out: string[] = [];
  for (const m of cmd.matchAll(/apt-get\s+install\s+([^;&|]*)/g)) {
    out.push(...m[1]!.split(/\s+/).filter((w) => w !== '' && !w.startsWith('-')));
  }
  return out;
}

/** COPY/ADD: flags, sources and destination. */
function parseCopy(ins: Instruction): { from: string | null; sources: string[]; dest: string } {
  assert.ok(!ins.args.startsWith('['), `line ${ins.line}: use the plain COPY form`);
  const words = ins.args.split(/\s+/);
  let from: string | null = null;
  while (words[0]?.startsWith('--')) {
    const flag = words.shift()!;
    const m = /^--from=(.+)$/.exec(flag);
    if (m) from = m[1]!;
  }
  assert.ok(words.length >= 2, `line ${ins.line}: COPY needs a source and a destination`);
  return { from, sources: words.slice(0, -1), dest: words.at(-1)! };
}

function workdir(stage: Stage, upTo?: Instruction): string {
  let dir = '/';
  for (const ins of stage.instructions) {
    if (ins === upTo) break;
    if (ins.keyword === 'WORKDIR') dir = path.posix.resolve(dir, ins.args);
  }
  return dir;
}

/** .dockerignore matching as Docker does it: anchored at the context root, a match on a parent
 * directory excludes everything under it, `**` spans directories, `!` re-includes, last wins. */
function dockerignore(text: string): (p: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = path.posix.normalize((negate ? l.slice(1) : l).trim()).replace(/^\/+|\/+$/g, '');
      let re = '';
      for (let i = 0; i < pattern.length; i++) {
        const c = pattern[i]!;
        if (c === '*' && pattern[i + 1] === '*') {
          i++;
          if (pattern[i + 1] === '/') {
            i++;
            re += '(?:.*/)?';
          } else re += '.*';
        } else if (c === '*') re += '[^/]*';
        else if (c === '?') re += '[^/]';
        else if (c === '[') {
          const end = pattern.indexOf(']', i);
          assert.ok(end > i, `bad class in ${l}`);
          re += pattern.slice(i, end + 1);
          i = end;
        } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
      }
      return { negate, re: new RegExp(`^${re}$`) };
    });
  return (p) => {
    const parts = p.split('/');
    let excluded = false;
    for (const { negate, re } of rules) {
      if (parts.some((_, i) => re.test(parts.slice(0, i + 1).join('/')))) excluded = !negate;
    }
    return excluded;
  };
}

const dockerfile = readFileSync(`${ROOT}Dockerfile`, 'utf8');
const stages = parseDockerfile(dockerfile);
const byName = new Map(stages.map((s) => [s.name, s]));
const stage = (name: string): Stage => {
  const s = byName.get(name);
  assert.ok(s, `stage ${name}`);
  return s;
};
const runs = (s: Stage) => s.instructions.filter((i) => i.keyword === 'RUN').map(runCommand);
const exec = (s: Stage, keyword: string): string[] => {
  const ins = s.instructions.filter((i) => i.keyword === keyword);
  assert.equal(ins.length, 1, `one ${keyword} in ${s.name}`);
  const v = JSON.parse(ins[0]!.args) as unknown;
  assert.ok(Array.isArray(v) && v.every((x) => typeof x === 'string'), `${keyword} in exec (JSON) form`);
  return v as string[];
};
const packageJson = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { scripts: Record<string, string>; devDependencies: Record<string, string> };

describe('Dockerfile', () => {
  it('has the four named stages in order', () => {
    assert.deepEqual(stages.map((s) => s.name), ['bpf', 'loader', 'agent', 'runtime']);
    for (const s of stages) assert.match(s.image, /^[\w./-]+:[\w.-]+$/, `${s.name}: a tagged image, not latest`);
    assert.ok(stages.every((s) => !s.image.endsWith(':latest')));
  });

  it('builds the bpf object with clang on Debian 12', () => {
    const bpf = stage('bpf');
    assert.equal(bpf.image, 'debian:12');
    const pkgs = runs(bpf).flatMap(aptInstalled);
    for (const p of ['clang', 'llvm', 'libbpf-dev', 'make']) assert.ok(pkgs.includes(p), `installs ${p}`);
    assert.ok(runs(bpf).some((c) => /\bmake\b.*-C bpf\b/.test(c)), 'runs bpf/Makefile');
    // vmlinux.h is vendored per architecture and copied in with bpf/: the build reads no
    // kernel BTF, so it works on any builder.
    assert.ok(bpf.instructions.some((i) => i.keyword === 'COPY' && /^bpf\/?\s+bpf\/?$/.test(i.args)), 'COPY bpf/ bpf/');
    for (const arch of ['x86', 'arm64']) {
      const header = `bpf/vmlinux/${arch}/vmlinux.h`;
      assert.ok(execFileSync('git', ['ls-files', '--', header], { cwd: ROOT, encoding: 'utf8' }).trim() === header, `${header} is in the repository`);
    }
    assert.match(readFileSync(`${ROOT}bpf/Makefile`, 'utf8'), /-Ivmlinux\/\$\(ARCH\)/, 'bpf/Makefile compiles against the vendored header');
    assert.doesNotMatch(runs(bpf).join('\n'), /\/sys\/kernel\/btf|bpftool/, 'the bpf stage reads no kernel BTF');
  });

  it('builds the loader with cargo --release --locked on a Rust at least as new as rust-version', () => {
    const loader = stage('loader');
    const m = /^rust:(\d+)\.(\d+)(?:\.\d+)?-bookworm$/.exec(loader.image);
    assert.ok(m, `rust:X.Y-bookworm, got ${loader.image}`);
    const want = /^rust-version\s*=\s*"(\d+)\.(\d+)/m.exec(readFileSync(`${ROOT}loader/Cargo.toml`, 'utf8'));
    assert.ok(want);
    assert.ok(Number(m[1]) * 1000 + Number(m[2]) >= Number(want[1]) * 1000 + Number(want[2]), `${loader.image} vs rust-version ${want[1]}.${want[2]}`);
    assert.ok(runs(loader).some((c) => /\bcargo build --release --locked\b/.test(c)));
  });

  it('builds the agent with npm ci, build:ts, then prunes the dev dependencies (the node binary among them)', () => {
    const agent = stage('agent');
    assert.equal(agent.image, 'node:24-bookworm');
    const cmds = runs(agent).join(' && ');
    const at = (re: RegExp) => {
      const m = re.exec(cmds);
      assert.ok(m, `${re} in the agent stage`);
      return m.index;
    };
    const ci = at(/\bnpm ci\b/);
    const build = at(/\bnpm run build:ts\b/);
    const prune = at(/\bnpm prune --omit=dev\b/);
    assert.ok(ci < build && build < prune, 'npm ci, then build:ts, then prune');
    assert.ok('node' in packageJson.devDependencies, 'the node devDependency this guards against');
    assert.match(cmds, /test ! -e node_modules\/node\b/, 'checks the node devDependency is gone');
    assert.equal(packageJson.scripts['build:ts'], 'tsc -p tsconfig.json');
  });

  it('runs on node:24-slim as a non-root user, without compilers', () => {
    const rt = stage('runtime');
    assert.equal(stages.at(-1), rt);
    assert.equal(rt.image, 'node:24-slim');
    const users = rt.instructions.filter((i) => i.keyword === 'USER');
    assert.ok(users.length > 0, 'a USER');
    const user = users.at(-1)!.args;
    const [uid] = user.split(':');
    assert.ok(!['root', '0', ''].includes(uid!), `USER ${user}`);
    assert.equal(uid, '10001');
    assert.ok(runs(rt).some((c) => /useradd\b.*--uid 10001\b/.test(c)), 'the user exists');
    // USER comes after every RUN that needs root.
    const userAt = rt.instructions.indexOf(users.at(-1)!);
    assert.ok(rt.instructions.slice(userAt).every((i) => i.keyword !== 'RUN'), 'no RUN after USER');

    const toolchain = ['clang', 'llvm', 'gcc', 'g++', 'cpp', 'make', 'cargo', 'rustc', 'rustup', 'build-essential', 'libbpf-dev', 'bpftool', 'libcap-dev'];
    for (const cmd of runs(rt)) {
      for (const p of aptInstalled(cmd)) assert.ok(!toolchain.includes(p), `installs ${p} in the runtime stage`);
      assert.doesNotMatch(cmd, /\b(clang|gcc|cargo|rustc|rustup|make)\b/, `toolchain in a runtime RUN: ${cmd}`);
    }
    for (const ins of rt.instructions.filter((i) => i.keyword === 'COPY')) {
      for (const src of parseCopy(ins).sources) assert.doesNotMatch(src, /cargo|rustup|llvm|clang/, `copies a toolchain: ${src}`);
    }
  });

  it('gives the loader file capabilities, then removes setcap', () => {
    const rt = stage('runtime');
    const cmd = runs(rt).find((c) => /\bsetcap\b/.test(c));
    assert.ok(cmd, 'setcap in the runtime stage');
    const m = /\bsetcap\s+(\S+)\s+(\S+)/.exec(cmd);
    assert.ok(m);
    const [caps, flags] = m[1]!.split('+');
    assert.ok(caps!.split(',').includes('cap_bpf') && caps!.split(',').includes('cap_perfmon'), `caps ${m[1]}`);
    assert.equal(flags, 'ep');
    assert.equal(path.posix.resolve(workdir(rt), m[2]!), path.posix.join(workdir(rt), 'loader/target/release/perfcatch-loader'));
    // Installed and purged in the same RUN, so it is in no layer of the image.
    assert.ok(aptInstalled(cmd).includes('libcap2-bin'));
    assert.match(cmd, /apt-get\s+(purge|remove)\b[^;&]*\blibcap2-bin\b/);
    assert.ok(runs(rt).filter((c) => aptInstalled(c).includes('libcap2-bin')).length === 1);
    assert.match(dockerfile, /bounding set/i, 'explains that the DaemonSet must still grant the capabilities');
  });

  it('copies the artifacts of the repository build layout to where the agent looks for them', () => {
    const rt = stage('runtime');
    const root = workdir(rt);
    // What src/config.ts resolves against its package root (dist/..): the runtime WORKDIR.
    const defaults = parseAgentArgs([], {});
    const expected = new Map([
      ['dist', 'agent'],
      ['node_modules', 'agent'],
      ['package.json', 'agent'],
      [path.relative(ROOT, defaults.loaderPath), 'loader'],
      [path.relative(ROOT, defaults.bpfObjectPath), 'bpf'],
    ]);
    assert.ok(expected.has('loader/target/release/perfcatch-loader') && expected.has('build/perfcatch.bpf.o'));
    const copied = new Map<string, string>();
    for (const ins of rt.instructions.filter((i) => i.keyword === 'COPY')) {
      const { from, sources, dest } = parseCopy(ins);
      assert.ok(from, `line ${ins.line}: the runtime stage copies only from build stages`);
      const fromStage = stage(from);
      assert.ok(stages.indexOf(fromStage) < stages.indexOf(rt));
      assert.equal(sources.length, 1);
      const src = sources[0]!.replace(/\/$/, '');
      // Built in the stage's own WORKDIR, which mirrors the repository ...
      const stageRoot = workdir(fromStage);
      assert.ok(src.startsWith(`${stageRoot}/`), `line ${ins.line}: ${src} is under ${from}'s WORKDIR ${stageRoot}`);
      const repoRoot = from === 'loader' ? path.posix.dirname(stageRoot) : stageRoot;
      const rel = path.posix.relative(repoRoot, src);
      // ... so it exists at the same place in this repository's build ...
      assert.ok(existsSync(path.join(ROOT, rel)), `${rel} exists in the repository build (npm run build)`);
      // ... and lands at the same place under the runtime WORKDIR.
      assert.equal(path.posix.resolve(workdir(rt, ins), dest).replace(/\/$/, ''), path.posix.join(root, rel), `line ${ins.line}: destination`);
      copied.set(rel, from);
    }
    assert.deepEqual(new Map([...copied].sort()), new Map([...expected].sort()));
    assert.ok(existsSync(path.join(ROOT, 'dist/cli.js')));
  });

  it('runs dist/cli.js agent with the V8 flags of npm start; the API on loopback, EXPOSE the metrics port', () => {
    const rt = stage('runtime');
    const entrypoint = exec(rt, 'ENTRYPOINT');
    const cmd = exec(rt, 'CMD');
    assert.deepEqual(entrypoint, ['node', '--max-old-space-size=160', '--max-semi-space-size=2', 'dist/cli.js']);
    assert.deepEqual(cmd, ['agent']);
    assert.deepEqual([...entrypoint, ...cmd], packageJson.scripts.start!.split(' '), 'same as npm start');
    assert.ok(existsSync(path.join(ROOT, entrypoint.at(-1)!)));
    const expose = rt.instructions.filter((i) => i.keyword === 'EXPOSE').map((i) => i.args);
    // Every PERFCATCH_* variable the image sets is one the agent accepts.
    const env: Record<string, string> = {};
    for (const ins of rt.instructions.filter((i) => i.keyword === 'ENV')) {
      for (const m of ins.args.matchAll(/(\w+)=(\S+)/g)) env[m[1]!] = m[2]!;
    }
    const perfcatchEnv = Object.fromEntries(Object.entries(env).filter(([k]) => k.startsWith('PERFCATCH_')));
    assert.doesNotThrow(() => parseAgentArgs([], perfcatchEnv));
    const config = parseAgentArgs([], perfcatchEnv);
    // Issue 13, finding 4: request data stays on loopback; only /metrics and /health listen wider.
    assert.equal(config.apiHost, '127.0.0.1', 'the API (request data) is not reachable from outside the container');
    assert.ok(config.metricsPort > 0);
    assert.equal(config.metricsHost, '0.0.0.0', '/metrics and /health can be scraped and probed');
    assert.deepEqual(expose, [String(config.metricsPort)]);
  });

  it('every RUN is valid sh', () => {
    for (const s of stages) {
      for (const cmd of runs(s)) {
        const r = spawnSync('sh', ['-n', '-c', cmd], { encoding: 'utf8' });
        assert.equal(r.status, 0, `${s.name}: ${cmd}\n${r.stderr}`);
      }
    }
  });
});

describe('.dockerignore', () => {
  const ignored = dockerignore(readFileSync(`${ROOT}.dockerignore`, 'utf8'));

  it('keeps build outputs, dependencies, git and test results out of the context', () => {
    for (const p of [
      'node_modules/typescript/package.json',
      'dist/cli.js',
      'loader/target/release/perfcatch-loader',
      'build/perfcatch.bpf.o',
      'build/vmlinux.h',
      '.git/HEAD',
      'test/results/accuracy.json',
      'test/bench/results/x.json',
    ]) {
      assert.ok(ignored(p), `${p} is ignored`);
    }
  });

  it('lets in everything the stages copy from the context', () => {
    const sources = stages
      .flatMap((s) => s.instructions.filter((i) => i.keyword === 'COPY').map(parseCopy))
      .filter((c) => c.from === null)
      .flatMap((c) => c.sources);
    assert.ok(sources.length > 0);
    for (const src of sources) {
      const rel = src.replace(/^\.\//, '').replace(/\/$/, '');
      assert.doesNotMatch(rel, /[[*?]/, `COPY ${src}: a plain path, every one checked below`);
      const tracked = execFileSync('git', ['ls-files', '--', rel], { cwd: ROOT, encoding: 'utf8' }).split('\n').filter(Boolean);
      assert.ok(tracked.length > 0, `${rel} is in the repository`);
      for (const f of tracked) assert.ok(!ignored(f), `${f} (copied by COPY ${src}) is not ignored`);
    }
  });

  it('matches like Docker does', () => {
    const m = dockerignore('build/*\n!build/keep.h\n**/target\nnode_modules\n');
    assert.ok(m('build/x.o') && !m('build/keep.h') && m('loader/target/a') && m('target/b') && m('node_modules/x/y'));
    assert.ok(!m('src/node_modules.ts') && !m('bpf/Makefile') && !m('buildx'));
  });
});
