/**
 * The user's Kubernetes API server, reached the way kubectl reaches it: the kubeconfig named by
 * --kubeconfig, else KUBECONFIG (a ':'-separated list, missing files skipped), else
 * ~/.kube/config, else the in-cluster service account when run in a pod. Its current context
 * gives the server, the CA and the credentials (client certificate, token, exec plugin), applied
 * by @kubernetes/client-node. GETs only.
 */
import { existsSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { CliError, UsageError } from './args.ts';
import type { HttpAnswer } from './sources.ts';

export class KubeApi {
  /** The API server's URL, without a trailing slash. */
  readonly server: string;
  readonly #config: KubeConfig;

  private constructor(server: string, config: KubeConfig) {
    this.server = server;
    this.#config = config;
  }

  /** Loads the kubeconfig; no kubeconfig at all is a one-line CliError saying where it looked. */
  static async open(kubeconfigFlag: string | undefined, env: Record<string, string | undefined>): Promise<KubeApi> {
    // Loaded only here: the client is large and the other commands never need it.
    const { KubeConfig } = await import('@kubernetes/client-node');
    const config = new KubeConfig();
    const files = kubeconfigFiles(kubeconfigFlag, env);
    try {
      if (files.length > 0) {
        config.loadFromFile(files[0]!);
        for (const file of files.slice(1)) {
          const more = new KubeConfig();
          more.loadFromFile(file);
          config.mergeConfig(more, true);
        }
      } else if (kubeconfigFlag === undefined && !env.KUBECONFIG && env.KUBERNETES_SERVICE_HOST) {
        config.loadFromCluster();
      } else {
        throw new CliError(`--cluster: no kubeconfig (${whereLooked(kubeconfigFlag, env)}); set KUBECONFIG or --kubeconfig FILE`);
      }
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw new CliError(`--cluster: cannot load the kubeconfig ${files.join(':')}: ${oneLine(err)}`);
    }
    const server = config.getCurrentCluster()?.server;
    if (!server) throw new CliError(`--cluster: the kubeconfig ${files.join(':')} has no current context with a cluster (kubectl config use-context NAME)`);
    return new KubeApi(server.replace(/\/+$/, ''), config);
  }

  /**
   * GETs `target` (a path from /api/…, or a URL on the server) with the kubeconfig's credentials.
   * Any Authorization in `headers` is dropped: that header carries the user's credential to the
   * API server, nothing else.
   */
  async get(target: string, headers: Record<string, string>, timeoutMs: number): Promise<HttpAnswer> {
    const url = new URL(target.startsWith('/') ? this.server + target : target);
    const forwarded = Object.fromEntries(Object.entries(headers).filter(([name]) => name.toLowerCase() !== 'authorization'));
    const options: https.RequestOptions = { method: 'GET', headers: forwarded };
    await this.#config.applyToHTTPSOptions(options);
    // A plain-HTTP server (kubectl proxy) takes no TLS agent.
    if (url.protocol === 'http:') delete options.agent;
    const send = url.protocol === 'http:' ? http.request : https.request;
    return new Promise((resolve, reject) => {
      const req = send(url, options, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text, retryAfter: res.headers['retry-after'] ?? null }));
        res.on('error', reject);
      });
      req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs / 1000} s`), { name: 'TimeoutError' })));
      req.on('error', reject);
      req.end();
    });
  }

  /** GETs a Kubernetes object as JSON; a refusal or failure is a CliError naming `what`. */
  async getObject<T>(path: string, what: string, timeoutMs = 10_000): Promise<T> {
    let res: HttpAnswer;
    try {
      res = await this.get(path, { accept: 'application/json' }, timeoutMs);
    } catch (err) {
      throw new CliError(`--cluster: cannot reach the Kubernetes API server ${this.server}: ${oneLine(err)}`);
    }
    let body: unknown = null;
    try {
      body = JSON.parse(res.text);
    } catch {
      // Reported below from the status.
    }
    if (res.status >= 200 && res.status < 300 && body !== null) return body as T;
    const message = (body as { message?: unknown } | null)?.message;
    throw new KubeRefusal(res.status, `${what}: the API server ${this.server} answered ${res.status}${typeof message === 'string' ? `: ${message}` : ''}`);
  }
}

/** The API server answered a GET with an error status. */
export class KubeRefusal extends CliError {
  override name = 'KubeRefusal';
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

function kubeconfigFiles(flag: string | undefined, env: Record<string, string | undefined>): string[] {
  if (flag !== undefined) {
    if (!existsSync(flag)) throw new UsageError(`--kubeconfig: no file ${flag}`);
    return [flag];
  }
  if (env.KUBECONFIG) return env.KUBECONFIG.split(':').filter((f) => f !== '' && existsSync(f));
  const home = join(env.HOME || homedir(), '.kube', 'config');
  return existsSync(home) ? [home] : [];
}

function whereLooked(flag: string | undefined, env: Record<string, string | undefined>): string {
  if (flag !== undefined) return `no file ${flag}`;
  if (env.KUBECONFIG) return `KUBECONFIG=${env.KUBECONFIG} names no existing file`;
  return `no KUBECONFIG, no ${join(env.HOME || homedir(), '.kube', 'config')}, not in a pod`;
}

function oneLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ').trim();
}
