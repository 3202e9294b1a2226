/**
 * LoaderProcess against a real child process: a tiny fake loader (a script written here, run
 * by this Node.js) that plays the part the test gives it through --bpf-object: replay the
 * recorded stream and wait, fail like the loader does, send another ABI, or die after
 * attaching. No root, no BPF.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { DecodedRecord } from '../../src/decode/records.ts';
import { PC_ABI_VERSION } from '../../src/decode/layout.ts';
import { LOADER_EXIT, LoaderProcess, LoaderStartError, type LoaderOptions } from '../../src/loader/loader-process.ts';
import { waitFor } from '../harness/ports.ts';

const FIXTURE = fileURLToPath(new URL('../fixtures/loader-stream.bin', import.meta.url));

/** The fake loader: argv is what LoaderProcess passes; --bpf-object names the part to play. */
const FAKE = `#!${process.execPath}
const fs = require('node:fs');
const args = process.argv.slice(2);
const part = args[args.indexOf('--bpf-object') + 1];
const frame = (body) => { const len = Buffer.alloc(4); len.writeUInt32LE(body.length); return Buffer.concat([len, body]); };
const loaderInfo = (info) => {
  const json = Buffer.from(JSON.stringify(info));
  const head = Buffer.alloc(8);
  head.writeUInt32LE(17, 0); // PC_REC_LOADER_INFO
  head.writeUInt32LE(json.length, 4);
  return frame(Buffer.concat([head, json]));
};
const untilStdinEnds = () => { process.stdin.on('data', (d) => process.stderr.write('got ' + d)); process.stdin.on('end', () => process.exit(0)); };
switch (part) {
  case 'replay':
    fs.writeSync(1, fs.readFileSync(${JSON.stringify(FIXTURE)}));
    process.stderr.write('perfcatch-loader: attached; args ' + args.join(' ') + '\\n');
    untilStdinEnds();
    break;
  case 'no-btf':
    process.stderr.write('perfcatch-loader: starting\\n');
    process.stderr.write('perfcatch-loader: no usable BTF at /sys/kernel/btf/vmlinux\\n');
    process.exit(4);
  case 'abi':
    fs.writeFileSync(process.argv[1] + '.pid', String(process.pid));
    fs.writeSync(1, loaderInfo({ abi: ${PC_ABI_VERSION + 1}, programs: [] }));
    setTimeout(() => process.exit(0), 30000);
    break;
  case 'no-abi':
    fs.writeFileSync(process.argv[1] + '.pid', String(process.pid));
    fs.writeSync(1, loaderInfo({ programs: [] }));
    setTimeout(() => process.exit(0), 30000);
    break;
  case 'pinned': {
    // Run 1: a fresh pinned state; a ring mark, 2 records after it and half of a third, then
    // a crash. Run 2: takes the state over (same state_id), and says what it was told.
    const runFile = process.argv[1] + '.runs';
    const run = (fs.existsSync(runFile) ? Number(fs.readFileSync(runFile, 'utf8')) : 0) + 1;
    fs.writeFileSync(runFile, String(run));
    const state = run === 1 ? 'fresh' : 'reused';
    fs.writeSync(1, loaderInfo({ abi: ${PC_ABI_VERSION}, programs: [], pins: { state, dir: '/sys/fs/bpf/x/y', state_id: 77 } }));
    process.stderr.write('perfcatch-loader: run ' + run + ' args ' + args.join(' ') + '\\n');
    const mark = Buffer.alloc(16); mark.writeUInt32LE(19, 0); mark.writeBigUInt64LE(4096n, 8);
    const env = (pid) => { const b = Buffer.alloc(272); b.writeUInt32LE(4, 0); b.writeUInt32LE(pid, 4); b.writeUInt32LE(1, 8); b.writeUInt32LE(1, 12); b.write('s', 16); return frame(b); };
    if (run === 1) {
      fs.writeSync(1, Buffer.concat([frame(mark), env(1), env(2), env(3).subarray(0, 30)]));
      setTimeout(() => process.exit(1), 100);
    } else untilStdinEnds();
    break;
  }
  case 'crash-fatal':
    fs.writeSync(1, loaderInfo({ abi: ${PC_ABI_VERSION}, programs: [] }));
    setTimeout(() => { process.stderr.write('perfcatch-loader: privileges lost\\n'); process.exit(3); }, 50);
    break;
}
`;

let dir: string;
let fake: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'perfcatch-fake-loader-'));
  fake = join(dir, 'fake-loader');
  // No extension and no package.json around it: Node.js runs it as CommonJS.
  writeFileSync(fake, FAKE);
  chmodSync(fake, 0o755);
});
after(() => rmSync(dir, { recursive: true, force: true }));

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function options(part: string, overrides: Partial<LoaderOptions> = {}): LoaderOptions {
  return {
    loaderPath: fake,
    bpfObjectPath: part,
    captureRequestBytes: 4096,
    captureResponseBytes: 512,
    ringbufBytes: 1 << 24,
    drainIntervalMs: 500,
    connTableSize: 65_536,
    pids: [],
    ports: [8080],
    processes: [],
    cgroups: [],
    kernelVariants: [],
    ...overrides,
  };
}

function handlers() {
  const records: { rec: DecodedRecord; generation: number }[] = [];
  const logs: string[] = [];
  const states: [boolean, string][] = [];
  const malformed: Error[] = [];
  return {
    records,
    logs,
    states,
    malformed,
    h: {
      onRecord: (rec: DecodedRecord, generation: number) => records.push({ rec, generation }),
      onMalformed: (err: Error) => malformed.push(err),
      onLog: (_level: string, message: string) => logs.push(message),
      onStateChange: (up: boolean, reason: string) => states.push([up, reason]),
    },
  };
}

describe('LoaderProcess with a fake loader', () => {
  it('starts once loader info arrives, hands every record over with its generation, and stops on stdin EOF', async () => {
    const { records, logs, states, malformed, h } = handlers();
    const loader = new LoaderProcess(options('replay'), h);
    await loader.start();
    assert.equal(loader.running, true);
    assert.equal(loader.generation, 1);
    assert.equal(loader.loaderInfo?.['abi'], PC_ABI_VERSION);
    assert.deepEqual(states, [[true, 'loader attached']]);
    await waitFor('the recorded requests', () => (records.filter((r) => r.rec.kind === 'request').length === 5 ? true : undefined));
    assert.ok(records.every((r) => r.generation === 1));
    assert.equal(records[0]!.rec.kind, 'loader_info');
    assert.deepEqual(malformed, []);
    await waitFor('the loader line', () => logs.find((l) => l.startsWith('loader: perfcatch-loader: attached')));
    assert.match(logs.find((l) => l.includes('attached'))!, /--bpf-object replay --capture-request-bytes 4096 --capture-response-bytes 512 --ringbuf-bytes 16777216 --drain-interval-ms 500 --conn-table-entries 65536 --ports 8080/);
    loader.send('ports 1,2');
    await waitFor('the control line', () => logs.find((l) => l === 'loader: got ports 1,2'));
    await loader.stop();
    assert.equal(loader.running, false);
    assert.deepEqual(states, [[true, 'loader attached']], 'a stop is not a crash');
  });

  it('a loader that exits before attaching: the start fails with its last stderr line and exit code', async () => {
    const { logs, h } = handlers();
    const loader = new LoaderProcess(options('no-btf'), h);
    await assert.rejects(loader.start(), (err: unknown) => {
      assert.ok(err instanceof LoaderStartError);
      assert.equal(err.message, 'no usable BTF at /sys/kernel/btf/vmlinux');
      assert.equal(err.exitCode, LOADER_EXIT.NO_BTF);
      return true;
    });
    assert.deepEqual(logs, [], 'its lines are not printed besides the error');
    assert.equal(loader.running, false);
  });

  for (const [part, sent] of [['abi', `ABI version ${PC_ABI_VERSION + 1}`], ['no-abi', 'no ABI version']] as const) {
    it(`a loader that sends ${sent}: the start fails with one line, and the loader is stopped`, async () => {
      const { records, h } = handlers();
      const loader = new LoaderProcess(options(part), h);
      await assert.rejects(loader.start(), (err: unknown) => {
        assert.ok(err instanceof LoaderStartError);
        assert.equal(err.exitCode, LOADER_EXIT.OBJECT);
        assert.match(err.message, new RegExp(`^loader sent ${sent}, this agent reads version ${PC_ABI_VERSION} .*: install the loader and the agent from one build$`));
        assert.doesNotMatch(err.message, /\n/);
        return true;
      });
      assert.deepEqual(records, [], 'nothing it sent is used');
      const pid = Number(readFileSync(`${fake}.pid`, 'utf8'));
      await waitFor('the refused loader to exit', () => (isAlive(pid) ? undefined : true));
      assert.equal(loader.running, false);
    });
  }

  it('a loader that dies after attaching with an exit a restart cannot change: down, and not restarted', async () => {
    const { states, h } = handlers();
    const loader = new LoaderProcess(options('crash-fatal'), h);
    await loader.start();
    await waitFor('the crash', () => (states.length === 2 ? true : undefined));
    assert.deepEqual(states, [[true, 'loader attached'], [false, 'privileges lost']]);
    await new Promise((r) => setTimeout(r, 1_300)); // past the first restart delay (1 s)
    assert.equal(loader.generation, 1, 'no restart');
    assert.equal(loader.restartCount, 0);
  });

  it('a loader that took over the pinned state of the one before: same generation, and it is told what arrived after the last ring mark', { timeout: 10_000 }, async () => {
    const { records, logs, h } = handlers();
    const loader = new LoaderProcess(options('pinned', { bpfPinDir: '/sys/fs/bpf/x' }), h);
    await loader.start();
    await waitFor('the restart', () => logs.find((l) => l.includes('run 2 args')), 5_000);
    assert.match(logs.find((l) => l.includes('run 1 args'))!, / --pin-root \/sys\/fs\/bpf\/x$/);
    // The mark at ring position 4096, then 2 whole records (the third was cut by the crash).
    assert.match(logs.find((l) => l.includes('run 2 args'))!, / --pin-root \/sys\/fs\/bpf\/x --resume 4096,2$/);
    await waitFor('the second loader info', () => (records.filter((r) => r.rec.kind === 'loader_info').length === 2 ? true : undefined));
    assert.ok(records.every((r) => r.generation === 1), 'one kernel state: one generation');
    assert.deepEqual(records.map((r) => r.rec.kind), ['loader_info', 'process_env', 'process_env', 'loader_info'], 'marks are not handed over');
    assert.equal(loader.generation, 1);
    await loader.stop();
  });

  it('a missing loader binary: the start fails naming the path', async () => {
    const { h } = handlers();
    const loader = new LoaderProcess(options('replay', { loaderPath: join(dir, 'nope') }), h);
    await assert.rejects(loader.start(), (err: unknown) => {
      assert.ok(err instanceof LoaderStartError);
      assert.equal(err.exitCode, LOADER_EXIT.OBJECT);
      assert.match(err.message, /^loader not found at .*nope \(build it with: npm run build\)$/);
      return true;
    });
  });
});
