/**
 * The Kubernetes API server peer itself, driven with plain fetch and a bearer token the way an
 * agent's pod watcher would: a pod bound to node-a gets a containerd container id through the
 * status subresource, a list with fieldSelector=spec.nodeName=node-a returns it and not the pod
 * on node-b, a watch from that list's resourceVersion sees the update (and nothing from node-b),
 * and a server-side dry run of an agent-like DaemonSet (privileged, hostPID) is accepted without
 * being stored. Proves the harness before real tests use it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startKubeApiServer, trustCa, type RunningKubeApiServer } from '../harness/kube-apiserver.ts';

interface ObjectMeta {
  name: string;
  namespace?: string;
  resourceVersion?: string;
  uid?: string;
}
interface Pod {
  metadata: ObjectMeta;
  spec: { nodeName?: string };
  status?: { phase?: string; containerStatuses?: { name: string; containerID?: string }[] };
}
interface PodList {
  metadata: { resourceVersion: string };
  items: Pod[];
}
interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: Pod;
}

const NS = `perfcatch-peer-${randomBytes(3).toString('hex')}`;
let kube: RunningKubeApiServer;

async function api<T>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<{ status: number; body: T }> {
  const res = await fetch(`${kube.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${kube.token}`, accept: 'application/json', ...(body ? { 'content-type': contentType } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: (await res.json()) as T };
}

function pod(name: string, nodeName: string): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, labels: { app: 'web' } },
    spec: { nodeName, containers: [{ name: 'app', image: 'registry.invalid/web:1' }] },
  };
}

function containerStatus(containerID: string): unknown {
  return {
    status: {
      phase: 'Running',
      containerStatuses: [
        {
          name: 'app',
          image: 'registry.invalid/web:1',
          imageID: '',
          containerID,
          ready: true,
          restartCount: 0,
          state: { running: { startedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z') } },
        },
      ],
    },
  };
}

const containerd = (): string => `containerd://${randomBytes(32).toString('hex')}`;

/** Reads watch events until one satisfies `want`; returns every event seen up to it. */
async function watchUntil(path: string, want: (e: WatchEvent) => boolean, timeoutMs = 15_000): Promise<{ seen: WatchEvent[]; ready: Promise<void> }> {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(new Error(`no matching watch event within ${timeoutMs} ms`)), timeoutMs);
  const res = await fetch(`${kube.url}${path}`, { headers: { authorization: `Bearer ${kube.token}` }, signal: ctrl.signal });
  assert.equal(res.status, 200);
  const seen: WatchEvent[] = [];
  const ready = (async () => {
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          const e = JSON.parse(line) as WatchEvent;
          seen.push(e);
          if (want(e)) return;
        }
      }
      throw new Error(`watch ended without a matching event: ${JSON.stringify(seen)}`);
    } finally {
      clearTimeout(timer);
      ctrl.abort();
    }
  })();
  return { seen, ready };
}

describe('kube-apiserver peer', () => {
  before(
    async () => {
      kube = await startKubeApiServer();
      trustCa(kube.ca);
    },
    { timeout: 1_800_000 }, // the first run on a machine builds kube-apiserver
  );
  after(async () => {
    await kube?.stop();
  });

  it('serves a version, a kubeconfig with the token and CA, and refuses a request without the token', async () => {
    const { status, body } = await api<{ gitVersion: string }>('GET', '/version');
    assert.equal(status, 200);
    assert.match(body.gitVersion, /^v1\.\d+\.\d+/);
    const cfg = JSON.parse(readFileSync(kube.kubeconfigPath, 'utf8')) as { clusters: { cluster: { server: string } }[]; users: { user: { token: string } }[] };
    assert.equal(cfg.clusters[0]?.cluster.server, kube.url);
    assert.equal(cfg.users[0]?.user.token, kube.token);
    assert.equal((await fetch(`${kube.url}/api/v1/pods`)).status, 401);
  });

  it('lists pods by node with their containerd ids, and a watch from that list sees the update', async () => {
    assert.equal((await api('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } })).status, 201);
    for (const [name, node] of [['web-a', 'node-a'], ['web-b', 'node-b']] as const) {
      const created = await api<Pod>('POST', `/api/v1/namespaces/${NS}/pods`, pod(name, node));
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.body.spec.nodeName, node);
    }
    const firstId = containerd();
    const patched = await api<Pod>('PATCH', `/api/v1/namespaces/${NS}/pods/web-a/status`, containerStatus(firstId), 'application/merge-patch+json');
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.equal(patched.body.status?.containerStatuses?.[0]?.containerID, firstId);

    const sel = `fieldSelector=${encodeURIComponent('spec.nodeName=node-a')}`;
    const list = await api<PodList>('GET', `/api/v1/pods?${sel}`);
    assert.equal(list.status, 200);
    assert.deepEqual(
      list.body.items.map((p) => [p.metadata.namespace, p.metadata.name, p.spec.nodeName, p.status?.containerStatuses?.[0]?.containerID]),
      [[NS, 'web-a', 'node-a', firstId]],
    );

    // A restart as the kubelet would report it: a new container id. Before it, a pod on node-b
    // changes too, which the node-a watch must not deliver.
    const secondId = containerd();
    const watch = await watchUntil(
      `/api/v1/pods?${sel}&watch=1&allowWatchBookmarks=false&resourceVersion=${list.body.metadata.resourceVersion}`,
      (e) => e.type === 'MODIFIED' && e.object.status?.containerStatuses?.[0]?.containerID === secondId,
    );
    assert.equal((await api('PATCH', `/api/v1/namespaces/${NS}/pods/web-b/status`, containerStatus(containerd()), 'application/merge-patch+json')).status, 200);
    assert.equal((await api('PATCH', `/api/v1/namespaces/${NS}/pods/web-a/status`, containerStatus(secondId), 'application/merge-patch+json')).status, 200);
    await watch.ready;
    assert.deepEqual(
      watch.seen.map((e) => [e.type, e.object.metadata.name, e.object.spec.nodeName]),
      [['MODIFIED', 'web-a', 'node-a']],
    );
  });

  it('accepts a server-side dry run of an agent-like DaemonSet without storing it', async () => {
    const ds = {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'perfcatch', namespace: NS, labels: { 'app.kubernetes.io/name': 'perfcatch' } },
      spec: {
        selector: { matchLabels: { 'app.kubernetes.io/name': 'perfcatch' } },
        template: {
          metadata: { labels: { 'app.kubernetes.io/name': 'perfcatch' } },
          spec: {
            hostPID: true,
            serviceAccountName: 'perfcatch',
            containers: [
              {
                name: 'agent',
                image: 'registry.invalid/perfcatch:0.1.0',
                securityContext: { privileged: true },
                env: [{ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }],
                volumeMounts: [{ name: 'sys', mountPath: '/sys', readOnly: true }],
              },
            ],
            volumes: [{ name: 'sys', hostPath: { path: '/sys' } }],
          },
        },
      },
    };
    const dry = await api<{ metadata: ObjectMeta; kind: string }>('POST', `/apis/apps/v1/namespaces/${NS}/daemonsets?dryRun=All`, ds);
    assert.equal(dry.status, 201, JSON.stringify(dry.body));
    assert.equal(dry.body.kind, 'DaemonSet');
    assert.equal(dry.body.metadata.name, 'perfcatch');
    assert.equal((await api('GET', `/apis/apps/v1/namespaces/${NS}/daemonsets/perfcatch`)).status, 404);

    // And an invalid one is refused by the same dry run, so the 201 above means it was validated.
    const bad = await api<{ reason: string }>('POST', `/apis/apps/v1/namespaces/${NS}/daemonsets?dryRun=All`, {
      ...ds,
      spec: { ...ds.spec, selector: { matchLabels: { other: 'x' } } },
    });
    assert.equal(bad.status, 422, JSON.stringify(bad.body));
    assert.equal(bad.body.reason, 'Invalid');
  });
});
