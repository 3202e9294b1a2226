/**
 * The agent's HTTP API on node:http: /health, /metrics, /api/requests, /api/requests/{id},
 * /api/services and /api/openapi.json. Framework-free: a handful of read-only routes.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RequestReader } from '../store/request-reader.ts';
import { summarizeServices } from '../store/service-summary.ts';
import { OPENAPI } from './openapi.ts';
import { parseRequestQuery, parseSinceOnly, QueryParamError } from './query-params.ts';

export interface ApiServerOptions {
  host: string;
  port: number;
  store: RequestReader;
  health: () => { ok: boolean; body: unknown };
  /** Given the request's Accept header (OpenMetrics when a scraper asks for it). */
  metrics: (accept: string | undefined) => Promise<{ contentType: string; body: string }>;
  /** Told about unexpected handler failures (answered with 500). */
  log?: { error(message: string): void };
}

export interface ApiServer {
  /** The bound port; differs from the requested one when that was 0. */
  readonly port: number;
  close(): Promise<void>;
}

type Route = (query: URLSearchParams, res: http.ServerResponse, req: http.IncomingMessage) => void | Promise<void>;

export function startApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  const routes = new Map<string, Route>([
    ['/health', (_query, res) => {
      const { ok, body } = opts.health();
      sendJson(res, ok ? 200 : 503, body);
    }],
    ['/api/requests', (query, res) => {
      const requests = opts.store.query(parseRequestQuery(query));
      sendJson(res, 200, { count: requests.length, requests });
    }],
    ['/api/services', (query, res) => {
      const services = summarizeServices(opts.store.records(parseSinceOnly(query)));
      sendJson(res, 200, { count: services.length, services });
    }],
    ['/api/openapi.json', (_query, res) => sendJson(res, 200, OPENAPI)],
    ['/metrics', async (_query, res, req) => {
      const { contentType, body } = await opts.metrics(req.headers.accept);
      res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store', vary: 'accept' }).end(body);
    }],
  ]);

  const byIdPrefix = '/api/requests/';
  const requestById = (pathname: string): Route | undefined => {
    if (!pathname.startsWith(byIdPrefix) || pathname.length === byIdPrefix.length) return undefined;
    let id: string;
    try {
      id = decodeURIComponent(pathname.slice(byIdPrefix.length));
    } catch {
      return () => {
        throw new QueryParamError('request_id', 'request_id: not a valid percent-encoded id');
      };
    }
    return (_query, res) => {
      const r = opts.store.findById(id);
      if (r) sendJson(res, 200, r);
      else sendJson(res, 404, { error: `no request ${JSON.stringify(id)} (it may have left the buffer)` });
    };
  };

  const server = http.createServer((req, res) => {
    handle(routes, requestById, req, res).catch((err: unknown) => {
      opts.log?.error(`api: ${req.method} ${req.url}: ${err instanceof Error ? err.message : String(err)}`);
      if (res.headersSent) res.destroy();
      else sendJson(res, 500, { error: 'internal error' });
    });
  });

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
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  // Split by hand rather than with `new URL`, which would read "//x" as a host name.
  const url = req.url ?? '/';
  const queryStart = url.indexOf('?');
  const pathname = queryStart === -1 ? url : url.slice(0, queryStart);
  const route = routes.get(pathname) ?? requestById(pathname);
  if (route === undefined) {
    sendJson(res, 404, { error: `no such endpoint: ${pathname}; see /api/openapi.json` });
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
    if (!(err instanceof QueryParamError)) throw err;
    sendJson(res, 400, { error: err.message, parameter: err.parameter });
  }
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
