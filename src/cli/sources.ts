/**
 * Where the query commands read requests from: the live agent's HTTP API (ApiSource) or the
 * agent's SQLite database, opened read-only (DbSource). Both behind RequestSource.
 * Failures a user can fix are CliErrors with a one-line message.
 */
import { existsSync, statSync } from 'node:fs';
import { MAX_LIMIT } from '../api/query-params.ts';
import { TOKEN_HEADER } from '../api/token-header.ts';
import { unboundedBudget, type QueryBudget } from '../store/query-budget.ts';
import type { RequestQuery } from '../store/request-reader.ts';
import { summarizeServices, type ServiceSummary } from '../store/service-summary.ts';
import { escapeControls, escapeControlsDeep } from '../http/safe-text.ts';
import type { RequestRecord } from '../types.ts';
import { CliError, UsageError } from './args.ts';

export const DEFAULT_API = 'http://127.0.0.1:9090';
/** Most requests one query returns (the API's own cap). */
export const MAX_QUERY_LIMIT = MAX_LIMIT;
const API_TIMEOUT_MS = 10_000;
/**
 * Tries of a query the agent refused as busy (429: queries already took their share of its
 * thread, src/api/load-guard.ts), each after the wait its Retry-After asks for.
 */
const BUSY_TRIES = 3;
/** The longest wait a Retry-After may ask for; without one, a second. */
const MAX_RETRY_AFTER_MS = 5_000;

/** The wait a Retry-After (seconds) asks for, bounded; a date or garbage counts as none. */
function retryAfterMs(header: string | null | undefined): number {
  const seconds = header === null || header === undefined || header.trim() === '' ? NaN : Number(header);
  return Number.isFinite(seconds) && seconds >= 0 ? Math.min(seconds * 1000, MAX_RETRY_AFTER_MS) : 1_000;
}

export interface RequestSource {
  /** Human description for headers and errors: "http://127.0.0.1:9090" or "/var/lib/perfcatch.db". */
  readonly description: string;
  /** Matching requests, newest first. */
  requests(q: RequestQuery): Promise<RequestRecord[]>;
  /** The request with this id, or null when there is none. */
  request(id: string): Promise<RequestRecord | null>;
  services(sinceMinutes: number): Promise<ServiceSummary[]>;
  close(): void;
}

export interface SourceOptions {
  api?: string | undefined;
  db?: string | undefined;
}

/**
 * Picks the source: --db or --api from the command line (not both); else PERFCATCH_API, else
 * PERFCATCH_DB_PATH from the environment; else the agent API on its default address.
 */
export async function openSource(opts: SourceOptions, env: Record<string, string | undefined>): Promise<RequestSource> {
  return new ControlEscapingSource(await pickSource(opts, env));
}

async function pickSource(opts: SourceOptions, env: Record<string, string | undefined>): Promise<RequestSource> {
  if (opts.api !== undefined && opts.db !== undefined) throw new UsageError('--api and --db: give one, not both');
  if (opts.db !== undefined) return DbSource.open(opts.db);
  // An agent bound beyond loopback requires its token (--api-token-file there).
  const token = env.PERFCATCH_API_TOKEN || undefined;
  if (opts.api !== undefined) return new ApiSource(opts.api, { origin: '--api', token });
  if (env.PERFCATCH_API) return new ApiSource(env.PERFCATCH_API, { origin: 'PERFCATCH_API', token });
  if (env.PERFCATCH_DB_PATH) return DbSource.open(env.PERFCATCH_DB_PATH);
  return new ApiSource(DEFAULT_API, { origin: '--api', token });
}

/** `source` with every string it answers escaped (see ControlEscapingSource). */
export function escapingSource(source: RequestSource): RequestSource {
  return new ControlEscapingSource(source);
}

/**
 * What the agent or a database hands the CLI ends up on a terminal: every string in it has
 * its control characters escaped (an older agent's records, or a hostile API, could hold
 * ESC sequences that clear the screen or set the window title). The CLI's own colours are
 * added after, by its painter.
 */
class ControlEscapingSource implements RequestSource {
  readonly #inner: RequestSource;
  readonly description: string;

  constructor(inner: RequestSource) {
    this.#inner = inner;
    this.description = escapeControls(inner.description);
  }

  async requests(q: RequestQuery): Promise<RequestRecord[]> {
    return escapeControlsDeep(await this.#inner.requests(q));
  }

  async request(id: string): Promise<RequestRecord | null> {
    return escapeControlsDeep(await this.#inner.request(id));
  }

  async services(sinceMinutes: number): Promise<ServiceSummary[]> {
    return escapeControlsDeep(await this.#inner.services(sinceMinutes));
  }

  close(): void {
    this.#inner.close();
  }
}

/** Query string of /api/requests for a RequestQuery. */
export function requestQueryParams(q: RequestQuery): URLSearchParams {
  const p = new URLSearchParams();
  if (q.process !== undefined) p.set('process', q.process);
  if (q.namespace !== undefined) p.set('namespace', q.namespace);
  if (q.pod !== undefined) p.set('pod', q.pod);
  if (q.correlation_id !== undefined) p.set('correlation_id', q.correlation_id);
  if (q.correlation_id_regex !== undefined) p.set('correlation_id_regex', q.correlation_id_regex.source);
  if (q.method !== undefined) p.set('method', q.method);
  if (q.path !== undefined) p.set('path', q.path);
  if (q.status !== undefined) p.set('status', String(q.status));
  if (q.min_duration_ms !== undefined) p.set('min_duration_ms', String(q.min_duration_ms));
  if (q.since_minutes !== undefined) p.set('since', String(q.since_minutes));
  if (q.limit !== undefined) p.set('limit', String(Math.min(q.limit, MAX_QUERY_LIMIT)));
  return p;
}

/** One GET's answer. */
export interface HttpAnswer {
  status: number;
  text: string;
  /** The Retry-After header, when the answer has one. */
  retryAfter?: string | null;
}

/** Sends one GET; rejects when no answer comes (an error with a `code`, or a TimeoutError). */
export type HttpGet = (url: string, headers: Record<string, string>, timeoutMs: number) => Promise<HttpAnswer>;

const fetchGet: HttpGet = async (url, headers, timeoutMs) => {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers });
  return { status: res.status, text: await res.text(), retryAfter: res.headers.get('retry-after') };
};

export interface ApiSourceOptions {
  /** Where the URL came from (a flag or variable), for the error message. */
  origin?: string;
  /** The agent's API token (its --api-token-file). */
  token?: string | undefined;
  /** How to send a GET; default fetch(). */
  get?: HttpGet;
  /** What to suggest when the agent cannot be reached. */
  unreachableHint?: string;
  /** What descriptions and errors call the agent; default its URL. */
  label?: string;
}

export class ApiSource implements RequestSource {
  readonly description: string;
  readonly #base: string;
  readonly #headers: Record<string, string>;
  readonly #get: HttpGet;
  readonly #unreachableHint: string;

  constructor(url: string, opts: ApiSourceOptions = {}) {
    const { origin = '--api', token } = opts;
    this.#get = opts.get ?? fetchGet;
    this.#unreachableHint = opts.unreachableHint ?? 'is `perfcatch agent` running? see --api, --db';
    // Both token headers: older agents read only Authorization, and a proxy may keep it.
    const tokenHeaders: Record<string, string> = token ? { authorization: `Bearer ${token}`, [TOKEN_HEADER]: token } : {};
    this.#headers = { accept: 'application/json', ...tokenHeaders };
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new UsageError(`${origin}: expected an http:// or https:// URL, got ${JSON.stringify(url)}`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new UsageError(`${origin}: expected an http:// or https:// URL, got ${JSON.stringify(url)}`);
    }
    if (parsed.search || parsed.hash) throw new UsageError(`${origin}: the URL must not have a query or fragment, got ${JSON.stringify(url)}`);
    this.#base = parsed.href.replace(/\/+$/, '');
    this.description = opts.label ?? this.#base;
  }

  async requests(q: RequestQuery): Promise<RequestRecord[]> {
    const body = await this.#getJson('/api/requests', requestQueryParams(q));
    const list = (body as { requests?: unknown } | null)?.requests;
    if (!Array.isArray(list)) throw this.#unexpected('/api/requests');
    return list as RequestRecord[];
  }

  async request(id: string): Promise<RequestRecord | null> {
    const path = `/api/requests/${encodeURIComponent(id)}`;
    const body = await this.#getJson(path, undefined, true);
    if (body === null) return null;
    if (typeof body !== 'object' || typeof (body as RequestRecord).request_id !== 'string') throw this.#unexpected(path);
    return body as RequestRecord;
  }

  async services(sinceMinutes: number): Promise<ServiceSummary[]> {
    const body = await this.#getJson('/api/services', new URLSearchParams({ since: String(sinceMinutes) }));
    const list = (body as { services?: unknown } | null)?.services;
    if (!Array.isArray(list)) throw this.#unexpected('/api/services');
    return list as ServiceSummary[];
  }

  close(): void {}

  /** GETs JSON; with `notFoundIsNull`, a 404 about the resource (not the endpoint) gives null. */
  async #getJson(path: string, params?: URLSearchParams, notFoundIsNull = false): Promise<unknown> {
    const qs = params && params.size > 0 ? `?${params}` : '';
    const url = `${this.#base}${path}${qs}`;
    let res: HttpAnswer;
    for (let attempt = 1; ; attempt++) {
      try {
        res = await this.#get(url, this.#headers, API_TIMEOUT_MS);
      } catch (err) {
        throw new CliError(`cannot reach the agent API at ${this.description}: ${describeFetchError(err)} (${this.#unreachableHint})`);
      }
      if (res.status !== 429 || attempt >= BUSY_TRIES) break;
      await new Promise((resolve) => setTimeout(resolve, retryAfterMs(res.retryAfter)));
    }
    const ok = res.status >= 200 && res.status < 300;
    let body: unknown;
    try {
      body = JSON.parse(res.text);
    } catch {
      if (ok) throw this.#unexpected(path);
      body = null;
    }
    if (ok) return body;
    const message = errorMessage(body) ?? `HTTP ${res.status}`;
    if (res.status === 404) {
      if (/no such endpoint/i.test(message) || body === null) {
        throw new CliError(`the agent API at ${this.description} has no ${path.replace(/^(\/api\/requests\/).+$/, '$1{id}')} endpoint (an older agent?)`);
      }
      if (notFoundIsNull) return null;
    }
    throw new CliError(`the agent API at ${this.description} answered ${res.status}: ${oneLine(message)}`);
  }

  #unexpected(path: string): CliError {
    return new CliError(`unexpected answer to GET ${path} from ${this.description}: not the perfcatch API`);
  }
}

/** The agent's `{"error": …}`, or a Kubernetes Status's `message` (from a proxying API server). */
function errorMessage(body: unknown): string | undefined {
  const { error, message } = (body ?? {}) as { error?: unknown; message?: unknown };
  if (typeof error === 'string') return error;
  return typeof message === 'string' ? message : undefined;
}

function describeFetchError(err: unknown): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return `no answer within ${API_TIMEOUT_MS / 1000} s`;
  // fetch() puts the socket's error in `cause`; node:https rejects with it.
  const cause = err instanceof Error ? ((err.cause ?? err) as { code?: unknown; message?: unknown }) : undefined;
  switch (cause?.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'unknown host';
    case 'ECONNRESET':
      return 'connection reset';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable';
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'connection timed out';
  }
  if (typeof cause?.message === 'string') return oneLine(cause.message);
  return oneLine(err instanceof Error ? err.message : String(err));
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/** The part of SqliteStore (src/store/sqlite-store.ts) the CLI uses. */
interface ReadOnlyStore {
  query(q: RequestQuery, nowSeconds?: number, budget?: QueryBudget): RequestRecord[];
  findById(id: string): RequestRecord | null;
  services(sinceMinutes: number, nowSeconds?: number, budget?: QueryBudget): ServiceSummary[];
  close(): void;
}

export class DbSource implements RequestSource {
  readonly description: string;
  readonly #store: ReadOnlyStore;

  private constructor(path: string, store: ReadOnlyStore) {
    this.description = path;
    this.#store = store;
  }

  /** Opens the agent's database read-only; a missing or unreadable file is a CliError. */
  static async open(path: string): Promise<DbSource> {
    if (!existsSync(path)) throw new CliError(`no database at ${path} (has the agent written one yet? see --db, PERFCATCH_DB_PATH)`);
    if (statSync(path).isDirectory()) throw new CliError(`${path} is a directory, not a database file`);
    // Loaded only here, so API users never load node:sqlite.
    const { SqliteStore } = await import('../store/sqlite-store.ts');
    let store: ReadOnlyStore;
    try {
      store = SqliteStore.open({ path, readOnly: true, retentionHours: 1e6, maxSizeMb: 1e6 });
    } catch (err) {
      // StoreError messages already say "cannot open database FILE: why".
      const message = oneLine(err instanceof Error ? err.message : String(err));
      throw new CliError(err instanceof Error && err.name === 'StoreError' ? message : `cannot open database ${path}: ${message}`);
    }
    return new DbSource(path, store);
  }

  async requests(q: RequestQuery): Promise<RequestRecord[]> {
    // The user's own process reading a file: no one else waits on it, so no budget.
    return this.#guard(() => this.#store.query(q, undefined, unboundedBudget()));
  }

  async request(id: string): Promise<RequestRecord | null> {
    return this.#guard(() => this.#store.findById(id));
  }

  async services(sinceMinutes: number): Promise<ServiceSummary[]> {
    return this.#guard(() => this.#store.services(sinceMinutes, undefined, unboundedBudget()));
  }

  close(): void {
    try {
      this.#store.close();
    } catch {
      // Closing a read-only handle cannot lose anything.
    }
  }

  #guard<T>(read: () => T): T {
    try {
      return read();
    } catch (err) {
      throw new CliError(`reading database ${this.description}: ${oneLine(err instanceof Error ? err.message : String(err))}`);
    }
  }
}
