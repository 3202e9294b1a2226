/**
 * `--cluster`: every agent pod of the chart asked through the Kubernetes API server's pod proxy
 * (/api/v1/namespaces/NS/pods/NAME:PORT/proxy/api/…), at most `concurrency` at once, and the
 * answers merged as one agent would have answered:
 * - requests: every agent's newest `limit`, then the newest `limit` of them all;
 * - one request by id: whichever agent has it;
 * - services: see merge-services.ts (percentiles exact, or flagged as upper bounds).
 * An agent that cannot be asked or does not answer is a failure, kept for the caller to list;
 * the others' answers still count. When no agent answers, the query is an error.
 */
import { DEFAULT_LIMIT, type RequestQuery } from '../store/request-reader.ts';
import type { ServiceSummary, SummaryInput } from '../store/service-summary.ts';
import type { RequestRecord } from '../types.ts';
import { settleBounded } from '../util/settle-bounded.ts';
import { CliError } from './args.ts';
import { agentTokens, findAgentPods, type AgentPod } from './cluster-agents.ts';
import { KubeApi } from './kube-api.ts';
import { mergeServices, type AgentServices } from './merge-services.ts';
import { ApiSource, MAX_QUERY_LIMIT, type RequestSource } from './sources.ts';

export interface ClusterOptions {
  namespace: string;
  kubeconfig?: string | undefined;
  concurrency: number;
}

export interface AgentFailure {
  pod: string;
  node: string | null;
  reason: string;
}

interface AskableAgent {
  pod: AgentPod;
  source: RequestSource;
}

export class ClusterSource implements RequestSource {
  readonly description: string;
  readonly #agents: AskableAgent[];
  readonly #concurrency: number;
  readonly #podCount: number;
  /** By pod name: a pod that fails twice (two queries of one command) is listed once. */
  readonly #failures = new Map<string, AgentFailure>();

  private constructor(namespace: string, agents: AskableAgent[], unusable: AgentPod[], concurrency: number) {
    this.description = `the agents in namespace ${namespace}`;
    this.#agents = agents;
    this.#concurrency = concurrency;
    this.#podCount = agents.length + unusable.length;
    for (const pod of unusable) this.#fail(pod, pod.unusable ?? 'unusable');
  }

  static async open(opts: ClusterOptions, env: Record<string, string | undefined>): Promise<ClusterSource> {
    const kube = await KubeApi.open(opts.kubeconfig, env);
    const pods = await findAgentPods(kube, opts.namespace);
    const tokenOf = await agentTokens(kube, pods, env);
    const usable = pods.filter((p) => p.unusable === null);
    const agents = usable.map((pod) => ({
      pod,
      source: new ApiSource(`${kube.server}/api/v1/namespaces/${encodeURIComponent(pod.namespace)}/pods/${encodeURIComponent(pod.name)}:${pod.apiPort}/proxy`, {
        token: tokenOf(pod),
        get: (url, headers, timeoutMs) => kube.get(url, headers, timeoutMs),
        label: `pod ${pod.namespace}/${pod.name}`,
        unreachableHint: 'through the Kubernetes API server',
      }),
    }));
    return new ClusterSource(opts.namespace, agents, pods.filter((p) => p.unusable !== null), opts.concurrency);
  }

  /** Agent pods that could not be asked or did not answer, with why. */
  failures(): AgentFailure[] {
    return [...this.#failures.values()].sort((a, b) => a.pod.localeCompare(b.pod));
  }

  /** Agent pods found, whether they answered or not. */
  podCount(): number {
    return this.#podCount;
  }

  async requests(q: RequestQuery): Promise<RequestRecord[]> {
    const limit = Math.min(q.limit ?? DEFAULT_LIMIT, MAX_QUERY_LIMIT);
    const lists = await this.#ask((source) => source.requests({ ...q, limit }));
    return lists.flat().sort(newestFirst).slice(0, limit);
  }

  async request(id: string): Promise<RequestRecord | null> {
    const found = await this.#ask((source) => source.request(id));
    return found.find((r) => r !== null) ?? null;
  }

  async services(sinceMinutes: number): Promise<ServiceSummary[]> {
    return mergeServices(await this.#ask((source) => agentServices(source, sinceMinutes)));
  }

  close(): void {}

  /** Asks every agent; the answers of those that answered. */
  async #ask<T>(question: (source: RequestSource) => Promise<T>): Promise<T[]> {
    const settled = await settleBounded(this.#agents, this.#concurrency, (agent) => question(agent.source));
    const answers: T[] = [];
    settled.forEach((result, i) => {
      if (result.status === 'fulfilled') answers.push(result.value);
      else this.#fail(this.#agents[i]!.pod, result.reason instanceof Error ? result.reason.message : String(result.reason));
    });
    if (answers.length === 0) throw new CliError(`--cluster: none of the ${this.#podCount} agent pods answered`);
    return answers;
  }

  #fail(pod: AgentPod, reason: string): void {
    if (!this.#failures.has(pod.name)) this.#failures.set(pod.name, { pod: `${pod.namespace}/${pod.name}`, node: pod.node, reason });
  }
}

/** Newest first, as the agent answers; ties by id so the order does not depend on who answered first. */
function newestFirst(a: RequestRecord, b: RequestRecord): number {
  return b.timestamp - a.timestamp || a.request_id.localeCompare(b.request_id);
}

/** One agent's requests of the window when one query returns them all, else its own summaries. */
async function agentServices(source: RequestSource, sinceMinutes: number): Promise<AgentServices> {
  const requests = await source.requests({ since_minutes: sinceMinutes, limit: MAX_QUERY_LIMIT });
  // Only the numbers a summary reads are kept, not up to MAX_QUERY_LIMIT whole records per agent.
  if (requests.length < MAX_QUERY_LIMIT) return { requests: requests.map(summaryInput) };
  return { summaries: await source.services(sinceMinutes) };
}

function summaryInput(r: RequestRecord): SummaryInput {
  const { service_name, process_name, http_status, duration_ms, cpu_time_ms, bytes_received, bytes_sent, timestamp } = r;
  return { service_name, process_name, http_status, duration_ms, cpu_time_ms, bytes_received, bytes_sent, timestamp };
}
