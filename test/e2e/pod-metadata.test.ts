/**
 * PodIndex against a real kube-apiserver (test/harness/kube-apiserver.ts), reached through a TCP
 * proxy the test can cut: pods on node-a (owned by a ReplicaSet owned by a Deployment) are
 * indexed by container id, the pod on node-b is not; a relabel, a container restart and a delete
 * arrive through the watch; server-side watch timeouts resume the watch without relisting; an
 * outage with an etcd compaction behind it ends in a 410 Gone and a relist that drops the pod
 * deleted meanwhile, with one warning. Then an API server that is not there (lookups null, one
 * warning, nothing thrown), and pid → pod end to end through a real cgroup v2 directory named as
 * containerd names them.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PodIndex } from '../../src/k8s/pod-index.ts';
import { cgroup2Mount } from '../../src/k8s/cgroup-allow-list.ts';
import { PodMetadataResolver } from '../../src/k8s/pod-metadata.ts';
import type { Logger } from '../../src/log.ts';
import { startKubeApiServer, trustCa, type RunningKubeApiServer } from '../harness/kube-apiserver.ts';
import { freePort, waitFor } from '../harness/ports.ts';

const NS = `perfcatch-pods-${randomBytes(3).toString('hex')}`;
const HASH = '5f6b7c8d9';
const RS = `web-${HASH}`;
let kube: RunningKubeApiServer;

interface Obj {
  metadata: { name: string; uid: string; resourceVersion: string };
}

async function api<T = Obj>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
  const res = await fetch(`${kube.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${kube.token}`, accept: 'application/json', ...(body ? { 'content-type': contentType } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = (await res.json()) as T;
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

const hex64 = (): string => randomBytes(32).toString('hex');

async function createPod(name: string, node: string, opts: { labels?: Record<string, string>; rsUid?: string; containers?: [string, string][] }): Promise<Obj> {
  const created = await api('POST', `/api/v1/namespaces/${NS}/pods`, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: NS,
      labels: { 'pod-template-hash': HASH, ...opts.labels },
      ownerReferences: opts.rsUid ? [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: RS, uid: opts.rsUid, controller: true, blockOwnerDeletion: true }] : undefined,
    },
    spec: { nodeName: node, containers: (opts.containers ?? []).map(([c]) => ({ name: c, image: 'registry.invalid/web:1' })) },
  });
  if (opts.containers) await setContainers(name, opts.containers);
  return created;
}

async function setContainers(pod: string, containers: [string, string][]): Promise<void> {
  await api('PATCH', `/api/v1/namespaces/${NS}/pods/${pod}/status`, {
    status: {
      phase: 'Running',
      containerStatuses: containers.map(([name, containerID]) => ({
        name, containerID, image: 'registry.invalid/web:1', imageID: '', ready: true, restartCount: 0,
        state: { running: { startedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z') } },
      })),
    },
  }, 'application/merge-patch+json');
}

/** A TCP proxy to the API server that the test can cut (connections and listener) and restore on the same port. */
class CuttableProxy {
  port = 0;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly target: number;
  constructor(target: number) {
    this.target = target;
  }
  async open(): Promise<void> {
    const server = createServer((c) => {
      const up = connect(this.target, '127.0.0.1');
      for (const s of [c, up]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {
          c.destroy();
          up.destroy();
        });
      }
      c.pipe(up);
      up.pipe(c);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }
  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
  connections(): number {
    return this.sockets.size;
  }
}

function kubeconfigAt(server: string, name: string): string {
  const path = join(kube.caPath, '..', name);
  writeFileSync(path, JSON.stringify({
    apiVersion: 'v1', kind: 'Config',
    clusters: [{ name: 'c', cluster: { server, 'certificate-authority-data': Buffer.from(kube.ca).toString('base64') } }],
    users: [{ name: 'u', user: { token: kube.token } }],
    contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
    'current-context': 'c',
  }), { mode: 0o600 });
  return path;
}

function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (msg: string) => void lines.push(`${level} ${msg}`);
  return { lines, error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') };
}

/** etcd's current revision, then a physical compaction up to it (older resourceVersions → 410 Gone). */
async function compactEtcd(): Promise<void> {
  const range = await fetch(`${kube.etcd.url}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: Buffer.from('/').toString('base64') }) });
  const revision = ((await range.json()) as { header: { revision: string } }).header.revision;
  const res = await fetch(`${kube.etcd.url}/v3/kv/compaction`, { method: 'POST', body: JSON.stringify({ revision, physical: true }) });
  assert.equal(res.status, 200, await res.text());
}

describe('PodIndex against a real kube-apiserver', () => {
  let proxy: CuttableProxy;
  let index: PodIndex;
  const log = recordingLogger();
  let rsUid = '';
  const ids = { web1: hex64(), web1side: hex64(), web2: hex64(), other: hex64() };

  before(
    async () => {
      // Watches go to etcd, so a compaction makes an old resourceVersion 410 Gone (the watch
      // cache would keep serving it).
      kube = await startKubeApiServer({ extraArgs: ['--watch-cache=false'] });
      trustCa(kube.ca);
      proxy = new CuttableProxy(Number(new URL(kube.url).port));
      await proxy.open();
      await api('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
      const template = { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'app', image: 'registry.invalid/web:1' }] } };
      // The Deployment's name differs from the ReplicaSet's prefix on purpose: it proves the
      // name came from the ReplicaSet's ownerReferences, not from the hash suffix.
      const deploy = await api('POST', `/apis/apps/v1/namespaces/${NS}/deployments`, {
        apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'storefront', namespace: NS },
        spec: { replicas: 2, selector: { matchLabels: { app: 'web' } }, template },
      });
      const rs = await api('POST', `/apis/apps/v1/namespaces/${NS}/replicasets`, {
        apiVersion: 'apps/v1', kind: 'ReplicaSet',
        metadata: { name: RS, namespace: NS, labels: { app: 'web', 'pod-template-hash': HASH },
          ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'storefront', uid: deploy.metadata.uid, controller: true, blockOwnerDeletion: true }] },
        spec: { replicas: 2, selector: { matchLabels: { app: 'web', 'pod-template-hash': HASH } },
          template: { ...template, metadata: { labels: { app: 'web', 'pod-template-hash': HASH } } } },
      });
      rsUid = rs.metadata.uid;
      await createPod('web-1', 'node-a', { labels: { 'app.kubernetes.io/name': 'checkout', app: 'web' }, rsUid, containers: [['app', `containerd://${ids.web1}`], ['sidecar', `containerd://${ids.web1side}`]] });
      await createPod('web-2', 'node-a', { rsUid, containers: [['app', `cri-o://${ids.web2}`]] });
      await createPod('web-3', 'node-b', { labels: { app: 'web' }, rsUid, containers: [['app', `containerd://${ids.other}`]] });
    },
    { timeout: 1_800_000 }, // the first run on a machine builds kube-apiserver
  );
  after(async () => {
    await index?.stop();
    await proxy?.cut();
    await kube?.stop();
  });

  it('indexes the containers of node-a\'s pods, with the Deployment from the ReplicaSet\'s owner', async () => {
    index = new PodIndex({
      nodeName: 'node-a',
      kubeConfig: kubeconfigAt(`https://127.0.0.1:${proxy.port}`, 'kubeconfig-proxy'),
      logger: log,
      retryMinMs: 100,
      retryMaxMs: 400,
      watchTimeoutSeconds: 2,
    });
    await index.start();
    assert.equal(index.health().synced, true);
    assert.equal(index.health().connected, true);
    assert.equal(index.health().pods, 2);
    assert.equal(index.health().containers, 3);
    const web1 = await waitFor('deployment from the ReplicaSet', () => {
      const m = index.lookup(ids.web1);
      return m?.deploymentName === 'storefront' ? m : undefined;
    }, 10_000);
    assert.equal(web1.namespace, NS);
    assert.equal(web1.podName, 'web-1');
    assert.match(web1.podUid, /^[0-9a-f-]{36}$/);
    assert.equal(web1.containerName, 'app');
    assert.equal(web1.nodeName, 'node-a');
    assert.equal(web1.serviceName, 'checkout'); // app.kubernetes.io/name beats app
    assert.equal(index.lookup(ids.web1side)?.containerName, 'sidecar');
    assert.equal(index.lookup(`containerd://${ids.web1side}`)?.containerName, 'sidecar');
    const web2 = index.lookup(ids.web2);
    assert.equal(web2?.podName, 'web-2');
    assert.equal(web2?.deploymentName, 'storefront');
    assert.equal(web2?.serviceName, 'storefront'); // no name labels: the workload
    assert.equal(index.lookup(ids.other), null); // node-b
    assert.equal(index.lookup(hex64()), null);
    assert.deepEqual(log.lines.filter((l) => l.startsWith('warn')), []);
  });

  it('without ReplicaSet reads, takes the Deployment from the pod-template-hash', async () => {
    const byHash = new PodIndex({ nodeName: 'node-a', kubeConfig: kube.kubeconfigPath, resolveReplicaSets: false });
    try {
      await byHash.start();
      assert.equal(byHash.lookup(ids.web2)?.deploymentName, 'web');
      assert.equal(byHash.lookup(ids.web2)?.serviceName, 'web');
    } finally {
      await byHash.stop();
    }
  });

  it('sees a relabel, a container restart, a new pod and a delete through the watch', async () => {
    await api('PATCH', `/api/v1/namespaces/${NS}/pods/web-2`, { metadata: { labels: { app: 'cart' } } }, 'application/merge-patch+json');
    await waitFor('relabel', () => (index.lookup(ids.web2)?.serviceName === 'cart' ? true : undefined), 10_000);

    const restarted = hex64();
    await setContainers('web-2', [['app', `cri-o://${restarted}`]]);
    await waitFor('new container id', () => (index.lookup(restarted)?.podName === 'web-2' ? true : undefined), 10_000);
    assert.equal(index.lookup(ids.web2), null);
    ids.web2 = restarted;

    const id4 = hex64();
    await createPod('web-4', 'node-a', { rsUid, containers: [['app', `containerd://${id4}`]] });
    await waitFor('new pod', () => (index.lookup(id4)?.podName === 'web-4' ? true : undefined), 10_000);
    await api('DELETE', `/api/v1/namespaces/${NS}/pods/web-4?gracePeriodSeconds=0`);
    await waitFor('delete', () => (index.lookup(id4) === null ? true : undefined), 10_000);
    assert.equal(index.health().lists, 1, 'all through the watch, no relist');
  });

  it('resumes the watch after server-side timeouts without relisting', async () => {
    const before = index.health().watchConnects;
    await waitFor('two more watch connects', () => (index.health().watchConnects >= before + 2 ? true : undefined), 15_000);
    const id5 = hex64();
    await createPod('web-5', 'node-a', { rsUid, containers: [['app', `containerd://${id5}`]] });
    await waitFor('pod after the reconnects', () => (index.lookup(id5)?.podName === 'web-5' ? true : undefined), 10_000);
    assert.equal(index.health().lists, 1);
    assert.equal(index.health().connected, true);
  });

  it('after an outage past an etcd compaction: one warning, then a 410 relist that drops the pod deleted meanwhile', async () => {
    await proxy.cut();
    await waitFor('disconnected', () => (index.health().connected ? undefined : true), 15_000);
    assert.ok(index.health().lastError, 'lastError set');
    // Changes the watch misses: web-1 deleted, web-6 created; then etcd forgets the history.
    await api('DELETE', `/api/v1/namespaces/${NS}/pods/web-1?gracePeriodSeconds=0`);
    const id6 = hex64();
    await createPod('web-6', 'node-a', { rsUid, containers: [['app', `containerd://${id6}`]] });
    await compactEtcd();
    await new Promise((r) => setTimeout(r, 1_000)); // several failed retries
    assert.equal(index.lookup(ids.web1)?.podName, 'web-1', 'the last known pods stay during the outage');
    assert.equal(index.lookup(id6), null);

    await proxy.open(); // same port
    await waitFor('resync', () => (index.lookup(id6)?.podName === 'web-6' && index.lookup(ids.web1) === null ? true : undefined), 20_000);
    const h = index.health();
    assert.equal(h.connected, true);
    assert.equal(h.lastError, null);
    assert.ok(h.lists >= 2, `relisted (lists=${h.lists})`);
    assert.equal(index.lookup(ids.web2)?.podName, 'web-2');
    const warns = log.lines.filter((l) => l.startsWith('warn'));
    assert.equal(warns.length, 1, warns.join('\n'));
    assert.match(warns[0] ?? '', /pod watch failed.*keeping the last known pods/);
    assert.ok(log.lines.some((l) => l.startsWith('info') && /reachable again/.test(l)));
  });

  it('maps a pid in a containerd-named cgroup v2 directory to its pod', async () => {
    const mount = cgroup2Mount();
    assert.ok(mount, 'a cgroup v2 hierarchy is mounted');
    assert.equal(process.getuid?.(), 0, 'creating cgroups needs root');
    const id = hex64();
    const slice = join(mount, 'perfcatch-test.slice');
    const scope = join(slice, `cri-containerd-${id}.scope`);
    let sleeper: ChildProcess | null = null;
    try {
      mkdirSync(scope, { recursive: true });
      sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
      const pid = sleeper.pid;
      assert.ok(pid);
      writeFileSync(join(scope, 'cgroup.procs'), `${pid}\n`);
      assert.match(readFileSync(`/proc/${pid}/cgroup`, 'utf8'), new RegExp(`^0::/perfcatch-test\\.slice/cri-containerd-${id}\\.scope$`, 'm'));

      const resolver = new PodMetadataResolver(index);
      assert.equal(resolver.metadataForPid(pid), null, 'no pod has that container yet');
      await createPod('web-7', 'node-a', { labels: { 'app.kubernetes.io/name': 'payments' }, rsUid, containers: [['app', `containerd://${id}`]] });
      const meta = await waitFor('pod of the pid', () => resolver.metadataForPid(pid) ?? undefined, 10_000);
      assert.deepEqual({ ...meta, podUid: '' }, {
        namespace: NS, podName: 'web-7', podUid: '', containerName: 'app', nodeName: 'node-a',
        deploymentName: 'storefront', serviceName: 'payments',
      });
      assert.equal(resolver.metadataForPid(process.pid), null, 'the test runner is in no pod');
    } finally {
      if (sleeper) {
        const exited = new Promise((r) => sleeper?.once('exit', r));
        sleeper.kill('SIGKILL');
        await exited;
      }
      if (existsSync(scope)) await waitFor('empty cgroup removed', () => { try { rmdirSync(scope); return true; } catch { return undefined; } }, 5_000);
      if (existsSync(slice)) rmdirSync(slice);
    }
  });
});

describe('PodIndex with no API server', () => {
  it('answers null, warns once, and throws nothing', async () => {
    const kubeDir = `/tmp/perfcatch-nokube-${randomBytes(3).toString('hex')}`;
    mkdirSync(kubeDir);
    const port = await freePort();
    const cfg = join(kubeDir, 'kubeconfig');
    writeFileSync(cfg, JSON.stringify({
      apiVersion: 'v1', kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: `https://127.0.0.1:${port}`, 'insecure-skip-tls-verify': false } }],
      users: [{ name: 'u', user: { token: 'nope' } }],
      contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'c',
    }));
    const log = recordingLogger();
    const index = new PodIndex({ nodeName: 'node-a', kubeConfig: cfg, logger: log, retryMinMs: 50, retryMaxMs: 100 });
    try {
      await index.start();
      await new Promise((r) => setTimeout(r, 800));
      assert.equal(index.lookup(hex64()), null);
      const h = index.health();
      assert.equal(h.connected, false);
      assert.equal(h.synced, false);
      assert.equal(h.pods, 0);
      assert.match(h.lastError ?? '', /ECONNREFUSED|fetch failed|connect/i);
      const warns = log.lines.filter((l) => l.startsWith('warn'));
      assert.equal(warns.length, 1, log.lines.join('\n'));
      assert.match(warns[0] ?? '', /using process-only metadata/);
      assert.ok(log.lines.filter((l) => l.startsWith('debug')).length >= 2, 'it kept retrying');
    } finally {
      await index.stop();
      // A missing kubeconfig file does not throw either.
      const missing = new PodIndex({ nodeName: 'node-a', kubeConfig: join(kubeDir, 'absent'), logger: log, retryMinMs: 50 });
      await missing.start();
      assert.equal(missing.lookup(hex64()), null);
      await missing.stop();
      rmSync(kubeDir, { recursive: true, force: true });
    }
  });
});
