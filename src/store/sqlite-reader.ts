/**
 * Reads the agent's database off the agent's thread (issue 13, finding 3). A query over a
 * week of a large database takes seconds of SQLite work; on the thread that drains the
 * loader it would stop recording, and loading its rows at once ran Node out of memory. Here
 * it runs in a worker with a capped heap: within a time and row budget (answered 422 past
 * them), a few queries queued at most (429 past that), and a worker that runs out of memory
 * is replaced, its query answered 422, while the agent goes on.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import type { RequestRecord } from '../types.ts';
import { QueryBudgetError } from './query-budget.ts';
import type { RequestQuery, RequestReader } from './request-reader.ts';
import type { ServiceSummary } from './service-summary.ts';
import type { ReaderReply, ReaderRequest, ReaderWorkerData } from './sqlite-reader-worker.ts';

export interface DbReadLimits {
  timeBudgetMs: number;
  rowBudget: number;
  heapMb: number;
  maxQueued: number;
}

export const DB_READ_LIMITS: Readonly<DbReadLimits> = {
  /** Time one database query may take in the worker. */
  timeBudgetMs: 5_000,
  /** Rows one query may visit. */
  rowBudget: 2_000_000,
  /** The worker's heap: what one query may hold at most. */
  heapMb: 64,
  /** Queries waiting or running at once; more are refused (429). */
  maxQueued: 4,
};

// Workers inherit V8 flags set before they start: the regex engine for their RegExps.
setFlagsFromString('--enable-experimental-regexp-engine');

/** A request before it gets its id (distributed over the union's members). */
type Unnumbered<T> = T extends unknown ? Omit<T, 'id'> : never;

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

export class SqliteReader implements RequestReader {
  readonly #path: string;
  /** Called before each query, so that it sees what the agent has queued for writing. */
  readonly #beforeRead: () => void;
  readonly #limits: DbReadLimits;
  #worker: Worker | null = null;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  /** Workers replaced after dying (out of memory, a crash). */
  workerRestarts = 0;

  constructor(path: string, beforeRead: () => void = () => {}, limits: Partial<DbReadLimits> = {}) {
    this.#path = path;
    this.#beforeRead = beforeRead;
    this.#limits = { ...DB_READ_LIMITS, ...limits };
  }

  query(q: RequestQuery, nowSeconds: number = Date.now() / 1000): Promise<RequestRecord[]> {
    const { correlation_id_regex: regex, ...rest } = q;
    return this.#ask({ op: 'query', query: regex === undefined ? rest : { ...rest, regex: regex.source }, now: nowSeconds }) as Promise<RequestRecord[]>;
  }

  findById(requestId: string): Promise<RequestRecord | null> {
    return this.#ask({ op: 'findById', requestId }) as Promise<RequestRecord | null>;
  }

  services(sinceMinutes: number, nowSeconds: number = Date.now() / 1000): Promise<ServiceSummary[]> {
    return this.#ask({ op: 'services', sinceMinutes, now: nowSeconds }) as Promise<ServiceSummary[]>;
  }

  async close(): Promise<void> {
    const w = this.#worker;
    this.#worker = null;
    await w?.terminate();
  }

  #ask(req: Unnumbered<ReaderRequest>): Promise<unknown> {
    if (this.#pending.size >= this.#limits.maxQueued) {
      return Promise.reject(new QueryBudgetError('too many database queries under way; retry in a second', 429));
    }
    this.#beforeRead();
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#ensureWorker().postMessage({ ...req, id } as ReaderRequest);
    });
  }

  #ensureWorker(): Worker {
    if (this.#worker) return this.#worker;
    // The worker's source sits next to this file, as .ts under the tests and .js once built.
    const file = fileURLToPath(import.meta.url);
    const workerFile = new URL(`./sqlite-reader-worker${extname(file)}`, import.meta.url);
    const data: ReaderWorkerData = { path: this.#path, timeBudgetMs: this.#limits.timeBudgetMs, rowBudget: this.#limits.rowBudget };
    const worker = new Worker(workerFile, {
      workerData: data,
      resourceLimits: { maxOldGenerationSizeMb: this.#limits.heapMb, maxYoungGenerationSizeMb: 8 },
    });
    worker.unref();
    worker.on('message', (reply: ReaderReply) => {
      const p = this.#pending.get(reply.id);
      if (!p) return;
      this.#pending.delete(reply.id);
      if ('value' in reply) p.resolve(reply.value);
      else p.reject(reply.budget ? new QueryBudgetError(reply.error) : new Error(reply.error));
    });
    const fail = (err: Error) => {
      if (this.#worker !== worker) return;
      this.#worker = null;
      this.workerRestarts++;
      const outOfMemory = (err as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY';
      for (const [id, p] of this.#pending) {
        this.#pending.delete(id);
        p.reject(outOfMemory ? new QueryBudgetError(`query needed more than ${this.#limits.heapMb} MB; narrow it`) : err);
      }
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`database reader exited (${code})`)));
    this.#worker = worker;
    return worker;
  }
}
