/**
 * The agent's HTTP API on node:http: /health, /metrics, /api/requests, /api/requests/{id},
 * /api/services and /api/openapi.json. Framework-free: a handful of read-only routes.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { QueryBudget, QueryBudgetError } from '../store/query-budget.ts';
import type { RequestReader } from '../store/request-reader.ts';
import { ApiLoadGuard, API_LIMITS } from './load-guard.ts';
import { OPENAPI } from './openapi.ts';
import { parseRequestQuery, parseSinceOnly, QueryParamError } from './query-params.ts';
import { TOKEN_HEADER } from './token-header.ts';

export interface ApiServerOptions {
  host: string;
  port: number;
  store: RequestReader;
  health: () => { ok: boolean; body: unknown };
  /** Given the request's Accept header (OpenMetrics when a scraper asks for it). */
  metrics: (accept: string | undefined) => Promise<{ contentType: string; body: string }>;
  /** Told about unexpected handler failures (answered with 500). */
  log?: { error(message: string): void };
  /** When set, /api/* answers only requests with `Authorization: Bearer <token>`. */
  token?: string | null;
  /** `metrics`: only /metrics and /health (a listener for scrapers and probes, no request data). */
  endpoints?: 'all' | 'metrics';
}

export interface ApiServer {
  /** The bound port; differs from the requested one when that was 0. */
  readonly port: number;
  close(): Promise<void>;
}

type Route = (query: URLSearchParams, res: http.ServerResponse, req: http.IncomingMessage) => void | Promise<void>;

export function startApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  const guard = new ApiLoadGuard();
  /** A query route: refused while queries already took their share of the thread, else run within a budget. */
  const budgeted = <P>(parse: (query: URLSearchParams) => P, run: (params: P, budget: QueryBudget) => unknown): Route => async (query, res) => {
    // A bad parameter is a 400 whatever the load: validation is cheap.
    const params = parse(query);
    if (!guard.admit()) throw new QueryBudgetError('the API is busy with other queries; retry in a second', 429);
    // Only time on this thread is charged: a database read runs in a worker meanwhile.
    let started = performance.now();
    let answer: unknown;
    try {
      answer = run(params, new QueryBudget());
    } finally {
      guard.spent(performance.now() - started);
    }
    if (answer instanceof Promise) answer = await answer;
    started = performance.now();
    try {
      sendJson(res, 200, answer);
    } finally {
      guard.spent(performance.now() - started);
    }
  };
  const routes = new Map<string, Route>([
    ['/health', (_query, res) => {
      const { ok, body } = opts.health();
      sendJson(res, ok ? 200 : 503, body);
    }],
    ['/api/requests', budgeted(parseRequestQuery, (q, budget) =>
      then(opts.store.query(q, undefined, budget), (requests) => ({ count: requests.length, requests })))],
    ['/api/services', budgeted(parseSinceOnly, (since, budget) =>
      then(opts.store.services(since, undefined, budget), (services) => ({ count: services.length, services })))],
    ['/api/openapi.json', (_query, res) => sendJson(res, 200, OPENAPI)],
    ['/metrics', async (_query, res, req) => {
      const { contentType, body } = await opts.metrics(req.headers.accept);
      res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store', vary: 'accept' }).end(body);
    }],
  ]);

  if (opts.endpoints === 'metrics') {
    for (const path of [...routes.keys()]) if (path.startsWith('/api/')) routes.delete(path);
  }
  const authorized = bearerCheck(opts.token ?? null);

  const byIdPrefix = '/api/requests/';
  const requestById = (pathname: string): Route | undefined => {
    if (opts.endpoints === 'metrics') return undefined;
    if (!pathname.startsWith(byIdPrefix) || pathname.length === byIdPrefix.length) return undefined;
    let id: string;
    try {
      id = decodeURIComponent(pathname.slice(byIdPrefix.length));
    } catch {
      return () => {
        throw new QueryParamError('request_id', 'request_id: not a valid percent-encoded id');
      };
    }
    return async (_query, res) => {
      if (id.length > API_LIMITS.maxRequestIdLength) {
        sendJson(res, 404, { error: 'no such request id (too long to be one)' });
        return;
      }
      const r = await opts.store.findById(id);
      if (r) sendJson(res, 200, r);
      else sendJson(res, 404, { error: `no request ${JSON.stringify(id)} (it may have left the buffer)` });
    };
  };

  const server = http.createServer({
    // A client that trickles its head or never finishes its request does not hold a socket.
    headersTimeout: API_LIMITS.headersTimeoutMs,
    requestTimeout: API_LIMITS.requestTimeoutMs,
    maxHeaderSize: API_LIMITS.maxHeaderBytes,
  }, (req, res) => {
    handle(routes, requestById, authorized, req, res).catch((err: unknown) => {
      opts.log?.error(`api: ${req.method} ${req.url}: ${err instanceof Error ? err.message : String(err)}`);
      if (res.headersSent) res.destroy();
      else sendJson(res, 500, { error: 'internal error' });
    });
  });

  // Beyond this many open sockets new connections are refused (closed at once) by Node.
  server.maxConnections = API_LIMITS.maxConnections;
  server.keepAliveTimeout = API_LIMITS.keepAliveTimeoutMs;

  return new Promise((resolve, reject) => {
    const onListenError = (err: NodeJS.ErrnoException) => {
      reject(new Error(`cannot listen on ${formatHostPort(opts.host, opts.port)}: ${describeListenError(err)}`));
    };
    server.once('error', onListenError);
    server.listen(opts.port, opts.host, () => {
      server.off('error', onListenError);
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((done, fail) => {
            server.close((err) => (err ? fail(err) : done()));
            // Keep-alive clients (curl, Prometheus) must not hold shutdown open.
            server.closeAllConnections();
          }),
      });
    });
  });
}

async function handle(
  routes: Map<string, Route>,
  requestById: (pathname: string) => Route | undefined,
  authorized: (authorization: string | undefined, tokenHeader: string | string[] | undefined) => boolean,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  // Split by hand rather than with `new URL`, which would read "//x" as a host name.
  const url = req.url ?? '/';
  if (url.length > API_LIMITS.maxUrlLength) {
    sendJson(res, 414, { error: `request target longer than ${API_LIMITS.maxUrlLength} characters` });
    return;
  }
  const queryStart = url.indexOf('?');
  const pathname = queryStart === -1 ? url : url.slice(0, queryStart);
  const route = routes.get(pathname) ?? requestById(pathname);
  if (route === undefined) {
    sendJson(res, 404, { error: `no such endpoint: ${pathname}; see /api/openapi.json` });
    return;
  }
  // Request data (/api/*) needs the token; /health and /metrics carry none.
  if (pathname.startsWith('/api/') && !authorized(req.headers.authorization, req.headers[TOKEN_HEADER])) {
    res.setHeader('www-authenticate', 'Bearer');
    sendJson(res, 401, { error: `this API needs Authorization: Bearer <token> or ${TOKEN_HEADER}: <token> (the agent's --api-token-file)` });
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    sendJson(res, 405, { error: `method ${req.method} not allowed; use GET` });
    return;
  }
  try {
    await route(new URLSearchParams(queryStart === -1 ? '' : url.slice(queryStart + 1)), res, req);
  } catch (err) {
    if (err instanceof QueryBudgetError) {
      if (err.status === 429) res.setHeader('retry-after', '1');
      sendJson(res, err.status, { error: err.message });
    }
    else if (err instanceof QueryParamError) sendJson(res, 400, { error: err.message, parameter: err.parameter });
    else throw err;
  }
}

/**
 * Checks `Authorization: Bearer <token>`, else the TOKEN_HEADER, against the token, in constant
 * time; no token: all pass.
 */
function bearerCheck(token: string | null): (authorization: string | undefined, tokenHeader: string | string[] | undefined) => boolean {
  if (token === null) return () => true;
  const digest = (text: string) => createHash('sha256').update(text).digest();
  const expected = digest(token);
  return (authorization, tokenHeader) => {
    const bearer = authorization === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(authorization)?.[1];
    const given = bearer ?? (typeof tokenHeader === 'string' ? tokenHeader.trim() : null);
    return given !== null && given !== '' && timingSafeEqual(digest(given), expected);
  };
}

/** Applies `f` to an answer given now or later. */
function then<T, U>(answer: T | Promise<T>, f: (value: T) => U): U | Promise<U> {
  return answer instanceof Promise ? answer.then(f) : f(answer);
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  res
    .writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' })
    .end(JSON.stringify(body));
}

function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function describeListenError(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'EADDRINUSE':
      return 'address in use';
    case 'EACCES':
      return 'permission denied';
    case 'EADDRNOTAVAIL':
      return 'address not available on this host';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'unknown host';
    default:
      return err.message;
  }
}
