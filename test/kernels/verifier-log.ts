/**
 * The verifier's own account of a BPF object on one matrix kernel: boots the cached Debian
 * kernel (as the matrix does, under TCG) and loads every program of the object with
 * `bpftool -d prog loadall`, whose libbpf debug output holds each program's full verifier log.
 * For when a program the host's kernel takes is refused by an older one and the loader's
 * one-line reason is not enough. Not a test.
 *
 *   node test/kernels/verifier-log.ts 6.1 build/perfcatch.bpf.o [OUT_DIR]
 *
 * The log (often hundreds of MB for the syscall programs: compile a small object of the unit
 * in question when you can) is written to OUT_DIR/bpftool.log (default /tmp/verifier-<id>).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { ROOT } from '../harness/agent.ts';
import { bootVm, kernelImage } from './vm.ts';

const [id, object, outArg] = process.argv.slice(2);
if (!id || !object) throw new Error('usage: node test/kernels/verifier-log.ts KERNEL_ID OBJECT [OUT_DIR]');
const cache = process.env.PERFCATCH_KERNEL_CACHE || join(homedir(), '.cache', 'perfcatch', 'kernels');
const release = readdirSync(cache).find((d) => d.startsWith(`${id}.`) || d.startsWith(`${id}-`));
if (!release) throw new Error(`no cached kernel ${id} under ${cache}: run npm run test:kernels once`);
const out = outArg ?? `/tmp/verifier-${id}`;
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
const load = `bpftool -d prog loadall ${q(resolve(object))} /sys/fs/bpf/verifier-log > ${q(join(out, 'bpftool.log'))} 2>&1`;
const script = `sh ${q(join(ROOT, 'test', 'kernels', 'guest.sh'))} ${q(ROOT)} ${q(out)} sh -c ${q(load)}`;
const boot = await bootVm({ kimg: kernelImage(cache, release), cpus: 1, accel: 'tcg', rwdir: out, script, consoleLog: join(out, 'console.log'), timeoutMs: 30 * 60_000 });
const log = join(out, 'bpftool.log');
const failed = existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter((l) => /failed to load|abusing|unbounded|invalid|R\d+ /.test(l)).slice(-20) : [];
console.log(`== ${id}: ${boot.seconds.toFixed(0)} s; log ${log}${failed.length ? `\n${failed.join('\n')}` : ''}`);
