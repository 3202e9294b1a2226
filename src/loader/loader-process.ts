/**
 * Runs the Rust loader (loader/) as a child process: passes filters as flags and stdin
 * commands, turns its stdout into decoded records, and restarts it if it dies after a
 * successful start. Fatal refusals (privileges, BTF, kernel version) are not retried.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { rmdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { FrameError, FrameReader } from '../decode/frame-reader.ts';
import { PC_ABI_VERSION } from '../decode/layout.ts';
import { decodeRecord, RecordDecodeError, type DecodedRecord } from '../decode/records.ts';

/** The loader's exit codes: enum pc_loader_exit in bpf/perfcatch.h without its PC_EXIT_
 * prefix (test/unit/layout.test.ts checks them against it). */
export const LOADER_EXIT = {
  OTHER: 1,
  USAGE: 2,
  PRIVILEGE: 3,
  NO_BTF: 4,
  OLD_KERNEL: 5,
  OBJECT: 6,
  LOAD: 7,
} as const;

/** Exits a restart cannot change: the same command line, process, kernel and file would fail
 * again. OTHER and LOAD are retried (a lost stdout, a load or attach that can pass later). */
const FATAL_EXITS = new Set<number>([
  LOADER_EXIT.USAGE, // the agent built a command line the loader refuses
  LOADER_EXIT.PRIVILEGE, // capabilities do not come back by themselves
  LOADER_EXIT.NO_BTF, // the kernel's build decides
  LOADER_EXIT.OLD_KERNEL, // so does its version
  LOADER_EXIT.OBJECT, // the BPF object is missing or broken until someone rebuilds it
]);
const MAX_BACKOFF_MS = 30_000;
/** The first restart delay when the kernel state outlives the loader (doubling from there). */
const PINNED_FIRST_BACKOFF_MS = 100;

export interface LoaderOptions {
  loaderPath: string;
  bpfObjectPath: string;
  captureRequestBytes: number;
  captureResponseBytes: number;
  ringbufBytes: number;
  drainIntervalMs: number;
  connTableSize: number;
  pids: number[];
  ports: number[];
  processes: string[];
  /** Initial cgroup filter ("0" closes it until the allowed cgroups are known). */
  cgroups: string[];
  /** Older kernel variants to force (loader --variants). */
  kernelVariants: string[];
  /** bpffs directory for the loader's pins (loader --pin-root); '' = nothing pinned. */
  bpfPinDir?: string;
}

/** The loader-info "pins" object (loader/src/loader_info.rs). */
interface PinsInfo {
  state?: 'off' | 'fresh' | 'reused';
  dir?: string | null;
  reason?: string | null;
  state_id?: number;
}

/** Ring-buffer records (not the loader's own) whose frames count after a ring mark: every
 * kernel record type of bpf/perfcatch.h (PC_REC_REQUEST..PC_REC_H2_CONN), as the loader counts
 * them for --resume. */
const RING_KINDS = new Set(['request', 'data', 'dependency', 'process_env', 'h2_io', 'h2_conn']);

export interface LoaderHandlers {
  /**
   * `generation` numbers the kernel state the record came from (1 for the first loader). A
   * loader that loads afresh starts a new one: its connection ids restart at 1 and its kernel
   * counters at 0, so ids are unique, and kernel counters cumulative, only per generation. A
   * loader that took over the pinned state of the one before (loader/src/pins.rs) continues
   * its generation: same ids, same counters, and records the dead loader left in the ring.
   * `loaderSeq` numbers the loader process (its own counters restart with each).
   */
  onRecord(rec: DecodedRecord, generation: number, loaderSeq: number): void;
  /**
   * The frames of one stdout chunk were handled: records' byte views into it must not be
   * kept past this call (see RequestAssembler.detach).
   */
  onChunkHandled?(): void;
  /** A frame that could not be decoded: counted, never fatal. */
  onMalformed(err: Error): void;
  onLog(level: 'info' | 'warn' | 'error', message: string): void;
  /** Capture went down (crash) or came back up. */
  onStateChange(up: boolean, reason: string): void;
}

/**
 * Why the agent cannot read a loader whose loader-info says this `abi` (null when it can): the
 * two were built from different versions of bpf/perfcatch.h, so every record could be
 * misread.
 */
export function abiMismatch(abi: unknown): string | null {
  if (abi === PC_ABI_VERSION) return null;
  const theirs = abi === undefined ? 'no ABI version' : `ABI version ${JSON.stringify(abi)}`;
  return `loader sent ${theirs}, this agent reads version ${PC_ABI_VERSION} (bpf/perfcatch.h PC_ABI_VERSION): install the loader and the agent from one build`;
}

export class LoaderStartError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.exitCode = exitCode;
  }
}

export class LoaderProcess {
  private child: ChildProcessWithoutNullStreams | null = null;
  private stopping = false;
  private restarts = 0;
  private generationSeq = 0;
  private loaderSeq = 0;
  /** The kernel state of the last loader (its ring buffer's map id) and its pin directory. */
  private lastStateId: number | null = null;
  private lastPinsDir: string | null = null;
  /** The last ring mark of the last loader, and the ring records received whole after it. */
  private lastMark: { pos: number; received: number } | null = null;
  private backoffMs = 1_000;
  private readonly opts: LoaderOptions;
  private readonly handlers: LoaderHandlers;
  private filters: { pids: number[]; ports: number[]; processes: string[] };
  loaderInfo: Record<string, unknown> | null = null;
  /** Epoch ms of the last restart attempt, null before any. */
  lastRestartAt: number | null = null;

  constructor(opts: LoaderOptions, handlers: LoaderHandlers) {
    this.opts = opts;
    this.handlers = handlers;
    this.filters = { pids: opts.pids, ports: opts.ports, processes: opts.processes };
  }

  /** The generation of the newest loader process started (0 before the first). */
  get generation(): number {
    return this.generationSeq;
  }

  get restartCount(): number {
    return this.restarts;
  }

  get running(): boolean {
    return this.child !== null && this.loaderInfo !== null;
  }

  /** Resolves once the loader has attached its programs; rejects with LoaderStartError. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      let started = false;
      let lastStderr = '';
      const args = [
        '--bpf-object', this.opts.bpfObjectPath,
        '--capture-request-bytes', String(this.opts.captureRequestBytes),
        '--capture-response-bytes', String(this.opts.captureResponseBytes),
        '--ringbuf-bytes', String(this.opts.ringbufBytes),
        '--drain-interval-ms', String(this.opts.drainIntervalMs),
        '--conn-table-entries', String(this.opts.connTableSize),
      ];
      if (this.filters.pids.length) args.push('--pids', this.filters.pids.join(','));
      if (this.filters.ports.length) args.push('--ports', this.filters.ports.join(','));
      if (this.filters.processes.length) args.push('--comms', this.filters.processes.join(','));
      if (this.opts.cgroups.length) args.push('--cgroups', this.opts.cgroups.join(','));
      if (this.opts.kernelVariants.length) args.push('--variants', this.opts.kernelVariants.join(','));
      if (this.opts.bpfPinDir) {
        args.push('--pin-root', this.opts.bpfPinDir);
        // What the loader before sent after its last mark and was not given back to the
        // kernel: the next loader, taking the ring over, skips those (loader/src/drain.rs).
        if (this.lastMark) args.push('--resume', `${this.lastMark.pos},${this.lastMark.received}`);
      }

      const child = spawn(this.opts.loaderPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
      this.child = child;
      const loaderSeq = ++this.loaderSeq;
      // Known once the loader says whether it took over the last one's kernel state.
      let generation = this.generationSeq;
      let refused = false;
      const frames = new FrameReader((frame) => {
        if (refused) return;
        let rec: DecodedRecord;
        try {
          rec = decodeRecord(frame);
        } catch (err) {
          if (this.lastMark) this.lastMark.received++; // a frame the loader wrote for a ring record
          if (err instanceof RecordDecodeError) return this.handlers.onMalformed(err);
          throw err;
        }
        if (rec.kind === 'ring_mark') {
          this.lastMark = { pos: rec.pos, received: 0 };
          return;
        }
        if (this.lastMark && RING_KINDS.has(rec.kind)) this.lastMark.received++;
        if (rec.kind === 'loader_info') {
          const mismatch = abiMismatch(rec.info['abi']);
          if (mismatch !== null) {
            // The loader sends its info once, before anything else: this start fails, with the
            // exit code of a broken object (the two binaries need a rebuild, not a retry).
            refused = true;
            child.kill('SIGTERM');
            reject(new LoaderStartError(mismatch, LOADER_EXIT.OBJECT));
            return;
          }
          this.loaderInfo = rec.info;
          const pins = (rec.info['pins'] ?? {}) as PinsInfo;
          const continues = pins.state === 'reused' && pins.state_id !== undefined && pins.state_id === this.lastStateId;
          generation = continues ? this.generationSeq : ++this.generationSeq;
          this.lastStateId = pins.state_id ?? null;
          this.lastPinsDir = pins.state === 'off' ? null : (pins.dir ?? null);
          if (!continues) this.lastMark = null;
          if (pins.reason) this.handlers.onLog('warn', `loader: not pinning (${pins.reason}): a loader restart reloads, and what happens meanwhile is not captured`);
          if (!started) {
            started = true;
            held.splice(0).forEach(logLine);
            // A loader whose kernel state is pinned loses nothing while none runs, but the ring
            // buffer fills meanwhile: its successor starts sooner (it takes over in ms).
            this.backoffMs = pins.state === 'fresh' || pins.state === 'reused' ? PINNED_FIRST_BACKOFF_MS : 1_000;
            this.handlers.onStateChange(true, 'loader attached');
            resolve();
          }
        }
        this.handlers.onRecord(rec, generation, loaderSeq);
      });
      child.stdout.on('data', (chunk: Buffer) => {
        try {
          frames.push(chunk);
        } catch (err) {
          if (!(err instanceof FrameError)) throw err;
          // A corrupt stream cannot be resynchronised: restart the loader.
          this.handlers.onMalformed(err);
          child.kill('SIGTERM');
        } finally {
          this.handlers.onChunkHandled?.();
        }
      });
      // Until attached, hold the loader's lines back: if it fails, its last line becomes the
      // agent's one-line error instead of being printed twice.
      const held: string[] = [];
      const logLine = (line: string) =>
        this.handlers.onLog(/error|fail|refus|warn/i.test(line) ? 'warn' : 'info', `loader: ${line}`);
      createInterface({ input: child.stderr }).on('line', (line) => {
        lastStderr = line;
        if (started) logLine(line);
        else held.push(line);
      });
      child.stdin.on('error', () => {}); // EPIPE when the loader died: seen via 'exit'
      child.on('error', (err: NodeJS.ErrnoException) => {
        const msg =
          err.code === 'ENOENT'
            ? `loader not found at ${this.opts.loaderPath} (build it with: npm run build)`
            : `cannot start loader ${this.opts.loaderPath}: ${err.message}`;
        if (!started) reject(new LoaderStartError(msg, LOADER_EXIT.OBJECT));
      });
      // 'close', not 'exit': every frame of this loader has been read then, so the next one
      // (which may continue this one's kernel state) starts after them, and knows the last mark.
      child.on('close', (code, signal) => {
        this.child = null;
        this.loaderInfo = null;
        const reason = lastStderr.replace(/^perfcatch-loader: /, '') || `loader exited (${signal ?? code})`;
        if (!started) {
          reject(new LoaderStartError(reason, code ?? 1));
          return;
        }
        if (this.stopping) return;
        this.handlers.onStateChange(false, reason);
        if (code !== null && FATAL_EXITS.has(code)) return;
        this.scheduleRestart();
      });
    });
  }

  private scheduleRestart(): void {
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
    setTimeout(() => {
      if (this.stopping) return;
      this.restarts++;
      this.lastRestartAt = Date.now();
      this.start().catch((err: Error) => {
        this.handlers.onLog('error', `loader restart failed: ${err.message}`);
        this.scheduleRestart();
      });
    }, delay).unref();
  }

  /** Sends a control line (see loader/src/filters.rs); lost if the loader is down. */
  send(command: string): void {
    this.child?.stdin.write(`${command}\n`);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (!child) {
      // The loader died and its successor has not started: its pins keep the programs
      // attached, and nobody else will remove them.
      this.removePins();
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.stdin.end(); // EOF tells the loader to remove its pins, detach and exit
    });
    this.removePins(); // a loader SIGKILLed by the timer above could not
  }

  private removePins(): void {
    if (!this.lastPinsDir) return;
    try {
      rmSync(this.lastPinsDir, { recursive: true, force: true });
    } catch (err) {
      this.handlers.onLog('warn', `removing ${this.lastPinsDir}: ${(err as Error).message}`);
    }
    try {
      rmdirSync(dirname(this.lastPinsDir)); // this agent's directory, when nothing else is in it
    } catch {
      // not empty, or gone already
    }
    this.lastPinsDir = null;
  }
}
