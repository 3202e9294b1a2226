/**
 * The agent pods of the Helm chart (charts/perfcatch), found through the Kubernetes API: the
 * DaemonSet's pods carry app.kubernetes.io/part-of=perfcatch and app.kubernetes.io/component=agent
 * whatever the release is called; with api.expose their container has the port `http-api` and
 * mounts the API token's Secret as the volume `api-token`.
 */
import { CliError } from './args.ts';
import { KubeRefusal, type KubeApi } from './kube-api.ts';

export const AGENT_SELECTOR = 'app.kubernetes.io/part-of=perfcatch,app.kubernetes.io/component=agent';
const API_PORT_NAME = 'http-api';
const TOKEN_VOLUME = 'api-token';
const RBAC_HINT = "see the chart's README: the querying user needs get/list pods and get pods/proxy in that namespace";

export interface AgentPod {
  namespace: string;
  name: string;
  node: string | null;
  /** The agent API's port on the pod's address (the container port http-api). */
  apiPort: number | null;
  /** The Secret holding the API token the pod mounts, if any. */
  tokenSecret: string | null;
  /** Why it cannot be asked (not running, no address, API not exposed), else null. */
  unusable: string | null;
}

/** The fields of a Pod read here. */
interface PodObject {
  metadata?: { name?: string };
  spec?: {
    nodeName?: string;
    containers?: { ports?: { name?: string; containerPort?: number }[] }[];
    volumes?: { name?: string; secret?: { secretName?: string } }[];
  };
  status?: { phase?: string; podIP?: string };
}

/** The agent pods in `namespace`; none at all is a CliError. */
export async function findAgentPods(kube: KubeApi, namespace: string): Promise<AgentPod[]> {
  const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods?labelSelector=${encodeURIComponent(AGENT_SELECTOR)}`;
  let list: { items?: PodObject[] };
  try {
    list = await kube.getObject(path, `--cluster: listing the agent pods in namespace ${namespace}`);
  } catch (err) {
    if (err instanceof KubeRefusal && err.status === 403) throw new CliError(`${err.message} (${RBAC_HINT})`);
    throw err;
  }
  const pods = (list.items ?? []).map((pod) => agentPod(namespace, pod)).sort((a, b) => a.name.localeCompare(b.name));
  if (pods.length === 0) {
    throw new CliError(`--cluster: no agent pods in namespace ${namespace} (labels ${AGENT_SELECTOR}); is the chart installed there? (--agent-namespace NS)`);
  }
  if (pods.every((p) => p.apiPort === null)) {
    throw new CliError(`--cluster: the agents in namespace ${namespace} serve their API on loopback only: install the chart with api.expose=true`);
  }
  return pods;
}

function agentPod(namespace: string, pod: PodObject): AgentPod {
  const port = (pod.spec?.containers ?? []).flatMap((c) => c.ports ?? []).find((p) => p.name === API_PORT_NAME)?.containerPort;
  const phase = pod.status?.phase ?? 'Unknown';
  let unusable: string | null = null;
  if (port === undefined) unusable = `its API is not exposed (no container port ${API_PORT_NAME}: the chart's api.expose)`;
  else if (phase !== 'Running') unusable = `the pod is ${phase}`;
  else if (!pod.status?.podIP) unusable = 'the pod has no IP address yet';
  return {
    namespace,
    name: pod.metadata?.name ?? '?',
    node: pod.spec?.nodeName ?? null,
    apiPort: port ?? null,
    tokenSecret: pod.spec?.volumes?.find((v) => v.name === TOKEN_VOLUME)?.secret?.secretName ?? null,
    unusable,
  };
}

/**
 * The API token of each Secret the pods mount, by Secret name: PERFCATCH_API_TOKEN when set
 * (for every pod), else read from the Secret (get secrets on that one name).
 */
export async function agentTokens(kube: KubeApi, pods: readonly AgentPod[], env: Record<string, string | undefined>): Promise<(pod: AgentPod) => string | undefined> {
  const fromEnv = env.PERFCATCH_API_TOKEN || undefined;
  if (fromEnv !== undefined) return () => fromEnv;
  const tokens = new Map<string, string>();
  for (const pod of pods) {
    if (pod.tokenSecret === null || tokens.has(pod.tokenSecret) || pod.unusable !== null) continue;
    tokens.set(pod.tokenSecret, await readToken(kube, pod.namespace, pod.tokenSecret));
  }
  return (pod) => (pod.tokenSecret === null ? undefined : tokens.get(pod.tokenSecret));
}

async function readToken(kube: KubeApi, namespace: string, secret: string): Promise<string> {
  const what = `--cluster: reading the agents' API token (Secret ${namespace}/${secret}, key token)`;
  let object: { data?: { token?: string } };
  try {
    object = await kube.getObject(`/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets/${encodeURIComponent(secret)}`, what);
  } catch (err) {
    if (err instanceof KubeRefusal && err.status === 403) {
      throw new CliError(`${err.message} (grant get on that Secret, as the chart's Role <release>-query does, or set PERFCATCH_API_TOKEN)`);
    }
    throw err;
  }
  const token = object.data?.token === undefined ? '' : Buffer.from(object.data.token, 'base64').toString('utf8').trim();
  if (token === '') throw new CliError(`${what}: the Secret has no key token`);
  return token;
}
