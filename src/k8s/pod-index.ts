/**
 * The pods of this node, indexed by container id, kept current by a list + watch on the API
 * server (@kubernetes/client-node's ListWatch, with fieldSelector=spec.nodeName=<node>).
 *
 * Keeping current: the watch resumes from the last resourceVersion whenever it ends (server-side
 * timeout, inactivity, a broken connection); a 410 Gone (resourceVersion too old) relists, and
 * the relist reports the pods deleted meanwhile. Bookmarks keep the resourceVersion fresh. When
 * the list or watch fails, it is retried with a backoff (1 s doubling to 30 s by default); the
 * first failure of an outage logs one warning, recovery logs one info line. Until the first
 * list succeeds lookups return null, so the agent keeps its process-only metadata; after an
 * outage the last known pods stay in the index.
 *
 * k8s.deployment.name: a pod owned by a ReplicaSet gets the ReplicaSet's Deployment owner, read
 * once per ReplicaSet (get replicasets; cached). Until then, or when that is not allowed, the
 * ReplicaSet name minus its `-<pod-template-hash>` suffix.
 * service.name: label app.kubernetes.io/name, else label app, else the workload's name (the
 * Deployment, else the direct owner), else null (the agent keeps the process's service name).
 *
 * RBAC the agent needs: pods list+watch (cluster-wide; the field selector limits it to the node),
 * and optionally replicasets get.
 */
import type { AppsV1Api, CoreV1Api, KubeConfig, ListWatch, V1OwnerReference, V1Pod, V1PodList, V1ReplicaSet } from '@kubernetes/client-node';
import type { Logger } from '../log.ts';
import { containerIdFromStatus } from './container-id.ts';

export interface PodMetadata {
  namespace: string;
  podName: string;
  podUid: string;
  containerName: string;
  nodeName: string;
  deploymentName: string | null;
  serviceName: string | null;
}

export interface PodIndexHealth {
  /** The last list or watch call succeeded and no failure followed. */
  connected: boolean;
  /** A list has succeeded at least once (lookups can answer). */
  synced: boolean;
  pods: number;
  containers: number;
  /** The last failure's message, cleared on success. */
  lastError: string | null;
  /** Successful lists (1 after the start; more after a 410 Gone or a restart from scratch). */
  lists: number;
  /** Watch (re)connections attempted. */
  watchConnects: number;
}

export interface PodIndexOptions {
  /** This node's name (the downward API's spec.nodeName, usually env NODE_NAME). */
  nodeName: string;
  /** A loaded KubeConfig, or a kubeconfig file path; default: loadKubeConfig(). */
  kubeConfig?: KubeConfig | string;
  logger?: Logger;
  /** Read ReplicaSets for their Deployment owner (needs get replicasets). Default true. */
  resolveReplicaSets?: boolean;
  retryMinMs?: number;
  retryMaxMs?: number;
  /** Server-side timeout of each watch request (the watch then resumes). Default 300. */
  watchTimeoutSeconds?: number;
}

const NOOP_LOGGER: Logger = { error() {}, warn() {}, info() {}, debug() {} };
const MAX_REPLICASETS = 4096;
const DEPLOYMENT_HASH_LABEL = 'pod-template-hash';

/** Loaded lazily: the client is large and an agent outside Kubernetes never needs it. */
type ClientModule = typeof import('@kubernetes/client-node');
let clientModule: Promise<ClientModule> | null = null;
function client(): Promise<ClientModule> {
  clientModule ??= import('@kubernetes/client-node');
  return clientModule;
}

/**
 * A KubeConfig from, in order: `path`, env KUBECONFIG, in-cluster (KUBERNETES_SERVICE_HOST with
 * the service account's token and CA), ~/.kube/config.
 */
export async function loadKubeConfig(path?: string): Promise<KubeConfig> {
  const k8s = await client();
  const kc = new k8s.KubeConfig();
  if (path) kc.loadFromFile(path);
  else if (!process.env.KUBECONFIG && process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}

/** What the index knows about a ReplicaSet's owner. */
interface ReplicaSetOwner {
  deploymentName: string | null;
  ownerName: string | null;
}

function controllerOf(refs: V1OwnerReference[] | undefined): V1OwnerReference | undefined {
  return refs?.find((r) => r.controller) ?? refs?.[0];
}

/** The ReplicaSet name minus `-<pod-template-hash>`, when the pod's hash label says so. */
function deploymentFromHash(rsName: string, labels: Record<string, string> | undefined): string | null {
  const hash = labels?.[DEPLOYMENT_HASH_LABEL];
  return hash && rsName.endsWith(`-${hash}`) && rsName.length > hash.length + 1 ? rsName.slice(0, -hash.length - 1) : null;
}

/**
 * The metadata of each container of `pod` that has a container id, by id. Pure. `replicaSet`
 * answers what is known of a ReplicaSet's owner (undefined: not known).
 */
export function podContainers(
  pod: V1Pod,
  nodeName: string,
  replicaSet: (namespace: string, name: string) => ReplicaSetOwner | undefined = () => undefined,
): Map<string, PodMetadata> {
  const out = new Map<string, PodMetadata>();
  const md = pod.metadata;
  if (!md?.name) return out;
  const namespace = md.namespace ?? 'default';
  const labels = md.labels;
  const owner = controllerOf(md.ownerReferences);
  let deploymentName: string | null = null;
  let workload: string | null = owner?.name ?? null;
  if (owner?.kind === 'ReplicaSet') {
    const known = replicaSet(namespace, owner.name);
    deploymentName = known ? known.deploymentName : deploymentFromHash(owner.name, labels);
    workload = deploymentName ?? known?.ownerName ?? owner.name;
  } else if (owner?.kind === 'Deployment') {
    deploymentName = owner.name;
  }
  const serviceName = labels?.['app.kubernetes.io/name'] || labels?.app || workload || null;
  const statuses = [
    ...(pod.status?.containerStatuses ?? []),
    ...(pod.status?.initContainerStatuses ?? []),
    ...(pod.status?.ephemeralContainerStatuses ?? []),
  ];
  for (const s of statuses) {
    const id = containerIdFromStatus(s.containerID);
    if (!id) continue;
    out.set(id, {
      namespace,
      podName: md.name,
      podUid: md.uid ?? '',
      containerName: s.name,
      nodeName: pod.spec?.nodeName ?? nodeName,
      deploymentName,
      serviceName,
    });
  }
  return out;
}

function message(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    const cause = (err as { cause?: unknown }).cause;
    const causeMsg = cause instanceof Error ? `: ${cause.message}` : '';
    return `${typeof code === 'number' ? `HTTP ${code} ` : ''}${err.message}${causeMsg}`.slice(0, 500);
  }
  return String(err).slice(0, 500);
}

export class PodIndex {
  private readonly opts: PodIndexOptions;
  private readonly log: Logger;
  /** Pods by uid, and the container ids each contributed. */
  private readonly pods = new Map<string, { pod: V1Pod; containers: string[] }>();
  private readonly byContainer = new Map<string, PodMetadata>();
  private readonly replicaSets = new Map<string, ReplicaSetOwner>();
  private readonly rsPending = new Set<string>();
  private resolveReplicaSets: boolean;
  private informer: ListWatch<V1Pod> | null = null;
  private apps: AppsV1Api | null = null;
  private stopped = true;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryMs: number;
  private warned = false;
  private state: PodIndexHealth = { connected: false, synced: false, pods: 0, containers: 0, lastError: null, lists: 0, watchConnects: 0 };
  private firstAttempt: { done: Promise<void>; resolve: () => void } | null = null;

  constructor(opts: PodIndexOptions) {
    this.opts = opts;
    this.log = opts.logger ?? NOOP_LOGGER;
    this.resolveReplicaSets = opts.resolveReplicaSets ?? true;
    this.retryMs = opts.retryMinMs ?? 1000;
  }

  /**
   * Starts the list + watch. Resolves once the first list has succeeded or failed (never
   * rejects: on failure the index retries in the background and lookups return null).
   */
  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    let resolve!: () => void;
    const done = new Promise<void>((r) => (resolve = r));
    this.firstAttempt = { done, resolve };
    await this.connect();
    await done;
  }

  /** Builds the client and the informer and starts it; a failure schedules a retry. */
  private async connect(): Promise<void> {
    try {
      const k8s = await client();
      const kc = typeof this.opts.kubeConfig === 'object' ? this.opts.kubeConfig : await loadKubeConfig(this.opts.kubeConfig);
      const core: CoreV1Api = kc.makeApiClient(k8s.CoreV1Api);
      this.apps = kc.makeApiClient(k8s.AppsV1Api);
      const fieldSelector = `spec.nodeName=${this.opts.nodeName}`;
      const timeoutSeconds = this.opts.watchTimeoutSeconds ?? 300;
      type WatchCallback = Parameters<InstanceType<ClientModule['Watch']>['watch']>[2];
      // The library's Watch, with a server-side timeout and bookmarks on every watch request.
      class PodWatch extends k8s.Watch {
        override watch(path: string, params: Record<string, string | number | boolean | undefined>, cb: WatchCallback, doneCb: (err: unknown) => void): Promise<AbortController> {
          return super.watch(path, { ...params, timeoutSeconds, allowWatchBookmarks: true }, cb, doneCb);
        }
      }
      const list = async (): Promise<V1PodList> => {
        const pods = await core.listPodForAllNamespaces({ fieldSelector });
        this.state.lists++;
        this.onSuccess();
        return pods;
      };
      const informer = new k8s.ListWatch<V1Pod>('/api/v1/pods', new PodWatch(kc), list, false, undefined, fieldSelector);
      informer.on('add', (p) => this.upsert(p));
      informer.on('update', (p) => this.upsert(p));
      informer.on('delete', (p) => this.remove(p));
      informer.on('connect', () => {
        this.state.watchConnects++;
      });
      informer.on('error', (err) => this.onFailure(err));
      if (this.stopped) return;
      this.informer = informer;
      await informer.start().catch((err: unknown) => this.onFailure(err));
    } catch (err) {
      this.onFailure(err);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const informer = this.informer;
    this.informer = null;
    this.firstAttempt?.resolve();
    await informer?.stop();
  }

  /** The pod container with this id (64 hex, or `<runtime>://<id>`), or null. */
  lookup(containerId: string): PodMetadata | null {
    const id = containerId.includes('://') ? containerIdFromStatus(containerId) : containerId.toLowerCase();
    return (id && this.byContainer.get(id)) || null;
  }

  health(): PodIndexHealth {
    return { ...this.state, pods: this.pods.size, containers: this.byContainer.size };
  }

  private onSuccess(): void {
    if (this.warned) this.log.info(`kubernetes: API server reachable again, pod metadata resumes (node ${this.opts.nodeName})`);
    this.warned = false;
    this.state.connected = true;
    this.state.synced = true;
    this.state.lastError = null;
    this.retryMs = this.opts.retryMinMs ?? 1000;
    this.firstAttempt?.resolve();
  }

  private onFailure(err: unknown): void {
    if (this.stopped) return;
    const msg = message(err);
    this.state.connected = false;
    this.state.lastError = msg;
    if (!this.warned) {
      this.warned = true;
      this.log.warn(
        `kubernetes: pod watch failed (${msg}); ${this.state.synced ? 'keeping the last known pods' : 'using process-only metadata'} and retrying`,
      );
    } else {
      this.log.debug(`kubernetes: pod watch failed again: ${msg}`);
    }
    this.firstAttempt?.resolve();
    if (this.retryTimer) return;
    const informer = this.informer;
    this.scheduleRetry(() => {
      // ListWatch stops on an error; start() resumes from its last resourceVersion (a 410
      // relists). Without an informer, setup itself failed (bad kubeconfig): set up again.
      if (informer) void informer.start().catch((e: unknown) => this.onFailure(e));
      else void this.connect();
    });
  }

  private scheduleRetry(fn: () => void): void {
    const delay = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, this.opts.retryMaxMs ?? 30_000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.stopped) fn();
    }, delay);
    this.retryTimer.unref();
  }

  private upsert(pod: V1Pod): void {
    if (!this.state.connected) this.onSuccess(); // a watch event proves the connection
    const uid = pod.metadata?.uid;
    if (!uid) return;
    this.drop(uid);
    const containers = podContainers(pod, this.opts.nodeName, (ns, name) => this.replicaSets.get(`${ns}/${name}`));
    for (const [id, meta] of containers) this.byContainer.set(id, meta);
    this.pods.set(uid, { pod, containers: [...containers.keys()] });
    this.resolveOwner(pod);
  }

  private remove(pod: V1Pod): void {
    const uid = pod.metadata?.uid;
    if (uid) this.drop(uid);
  }

  private drop(uid: string): void {
    const old = this.pods.get(uid);
    if (!old) return;
    for (const id of old.containers) this.byContainer.delete(id);
    this.pods.delete(uid);
  }

  /** Reads the pod's ReplicaSet once for its Deployment owner, then re-indexes its pods. */
  private resolveOwner(pod: V1Pod): void {
    const owner = controllerOf(pod.metadata?.ownerReferences);
    if (!this.resolveReplicaSets || !this.apps || owner?.kind !== 'ReplicaSet') return;
    const namespace = pod.metadata?.namespace ?? 'default';
    const key = `${namespace}/${owner.name}`;
    if (this.replicaSets.has(key) || this.rsPending.has(key)) return;
    this.rsPending.add(key);
    this.apps
      .readNamespacedReplicaSet({ name: owner.name, namespace })
      .then((rs: V1ReplicaSet) => {
        const rsOwner = controllerOf(rs.metadata?.ownerReferences);
        if (this.replicaSets.size >= MAX_REPLICASETS) this.replicaSets.clear();
        this.replicaSets.set(key, {
          deploymentName: rsOwner?.kind === 'Deployment' ? rsOwner.name : null,
          ownerName: rsOwner?.name ?? null,
        });
        for (const { pod: p } of [...this.pods.values()]) {
          const o = controllerOf(p.metadata?.ownerReferences);
          if ((p.metadata?.namespace ?? 'default') === namespace && o?.kind === 'ReplicaSet' && o.name === owner.name) this.upsert(p);
        }
      })
      .catch((err: unknown) => {
        const code = (err as { code?: unknown }).code;
        if (code === 403 || code === 401) {
          this.resolveReplicaSets = false;
          this.log.info(`kubernetes: cannot read ReplicaSets (${message(err)}); k8s.deployment.name comes from the pod-template-hash label`);
        } else {
          this.log.debug(`kubernetes: reading ReplicaSet ${key} failed: ${message(err)}`);
        }
      })
      .finally(() => this.rsPending.delete(key));
  }
}
