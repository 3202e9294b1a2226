/**
 * The HTTP/2 and gRPC e2e tests (test/e2e/h2-grpc.test.ts: server side; h2-client.test.ts:
 * outbound gRPC calls linked in Jaeger; h2c-go.test.ts: h2c Upgrade and prior knowledge on a Go
 * server) inside one Debian kernel's VM, as the kernel matrix boots them (default 5.10, whose
 * verifier is the strict one), with smaller counts (TCG runs user space 10-30x slower). Test
 * files after the kernel id run instead of the three. Not part of `npm run test:kernels`: the smoke's
 * check table stays as it is. Usage: `node test/kernels/run-h2-vm.ts [5.10|6.1|6.12]` after
 * `npm run build`; prints the test's output and exits with its status.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../harness/agent.ts';
import { bootVm, kernelImage } from './vm.ts';

const given = process.argv.slice(3);
const H2_TESTS = given.length ? given : ['test/e2e/h2-grpc.test.ts', 'test/e2e/h2-client.test.ts', 'test/e2e/h2c-go.test.ts'];
const KERNEL_CACHE = process.env.PERFCATCH_KERNEL_CACHE || join(homedir(), '.cache', 'perfcatch', 'kernels');
const id = process.argv[2] ?? '5.10';
const release = readdirSync(KERNEL_CACHE).find((d) => d.startsWith(`${id}.`) || d.startsWith(`${id}-`));
if (!release) throw new Error(`no cached kernel ${id} under ${KERNEL_CACHE}: run npm run test:kernels once`);
const out = join(ROOT, 'test', 'results', 'kernels', `h2-${id}`);
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
const command = [process.execPath, '--test', '--test-concurrency=1', '--test-timeout=1800000', `--test-reporter-destination=${join(out, 'h2.log')}`, '--test-reporter=spec', ...H2_TESTS]
  .map(q)
  .join(' ');
const env = ['PERFCATCH_TEST_TIME_SCALE=5', 'PERFCATCH_H2_REQUESTS=200', 'PERFCATCH_GRPC_CALLS=1000', 'PERFCATCH_GRPC_CLIENT_CALLS=300'].join(' ');
const script = `${env} sh ${q(join(ROOT, 'test', 'kernels', 'guest.sh'))} ${q(ROOT)} ${q(out)} ${command}`;
console.log(`== ${id}: booting ${release} (tcg), ${H2_TESTS.join(', ')} inside`);
const boot = await bootVm({
  kimg: kernelImage(KERNEL_CACHE, release),
  cpus: 1,
  accel: 'tcg',
  rwdir: out,
  script,
  consoleLog: join(out, 'console.log'),
  timeoutMs: 30 * 60_000,
});
const log = join(out, 'h2.log');
if (existsSync(log)) process.stdout.write(readFileSync(log, 'utf8'));
const code = existsSync(join(out, 'exit-code')) ? readFileSync(join(out, 'exit-code'), 'utf8').trim() : null;
console.log(`== ${id}: ${boot.seconds.toFixed(0)} s, exit ${code ?? '(none)'}${boot.timedOut ? ', timed out' : ''}`);
process.exitCode = code === '0' ? 0 : 1;
