/**
 * The agent on a (simulated) Kubernetes node: a real kube-apiserver holds pods on node-a
 * whose container ids name cgroup v2 directories, real servers run in those cgroups, and the
 * agent (--node-name node-a --namespace shop) must put the pod's namespace, name and service
 * on its records and the k8s.* attributes on its spans' resource, and turn away the other
 * namespace's pod in the kernel: no record and no dependency from it, for pods started before
 * and after the agent.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { cgroup2Mount } from '../../src/k8s/cgroup-allow-list.ts';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT, startAgent, type RunningAgent } from '../harness/agent.ts';
import { startCollector, type RunningCollector } from '../harness/collector.ts';
import { adminWrite, startKubeApiServer, trustCa, type RunningKubeApiServer } from '../harness/kube-apiserver.ts';
import { waitFor } from '../harness/ports.ts';
import { startServer } from '../harness/processes.ts';
import { getRequest, RawHttpClient } from '../harness/raw-client.ts';
import { startNodeServer, type RunningServer } from '../harness/runtimes.ts';
import type { RequestRecord } from '../../src/types.ts';

const NS = 'shop';
const ID = randomBytes(32).toString('hex');
const OTHER_ID = randomBytes(32).toString('hex');

describe('Kubernetes pod metadata through the agent', () => {
  let kube: RunningKubeApiServer;
  let collector: RunningCollector;
  let server: RunningServer;
  let other: RunningServer;
  let shopAfter: RunningServer | undefined;
  let otherAfter: RunningServer | undefined;
  let agent: RunningAgent;
  const mount = cgroup2Mount();
  assert.ok(mount, 'a cgroup v2 hierarchy is mounted');
  const slice = join(mount, 'perfcatch-agent-test.slice');
  const scope = join(slice, `cri-containerd-${ID}.scope`);
  const otherScope = join(slice, `cri-containerd-${OTHER_ID}.scope`);

  /** A running pod on node-a whose only container has `containerId`. */
  async function createPod(ns: string, name: string, containerId: string, extra: Record<string, unknown> = {}): Promise<void> {
    await api('POST', `/api/v1/namespaces/${ns}/pods`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: ns, ...extra },
      spec: { nodeName: 'node-a', containers: [{ name: 'app', image: 'registry.invalid/app:1' }] },
    });
    await api('PATCH', `/api/v1/namespaces/${ns}/pods/${name}/status`, {
      status: {
        phase: 'Running',
        containerStatuses: [
          {
            name: 'app', containerID: `containerd://${containerId}`, image: 'registry.invalid/app:1', imageID: '', ready: true, restartCount: 0,
            state: { running: { startedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z') } },
          },
        ],
      },
    });
  }

  const api = (method: 'POST' | 'PATCH', path: string, body: unknown) => adminWrite<{ metadata: { uid: string } }>(kube, method, path, body);

  /** Deployment checkout -> ReplicaSet checkout-7d9f8c6b5, as the controllers would make them. */
  async function createOwners(): Promise<string> {
    const labels = { 'app.kubernetes.io/name': 'checkout', 'pod-template-hash': '7d9f8c6b5' };
    const template = { metadata: { labels }, spec: { containers: [{ name: 'app', image: 'registry.invalid/checkout:1' }] } };
    const deployment = await api('POST', `/apis/apps/v1/namespaces/${NS}/deployments`, {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'checkout', namespace: NS },
      spec: { replicas: 1, selector: { matchLabels: labels }, template },
    });
    const rs = await api('POST', `/apis/apps/v1/namespaces/${NS}/replicasets`, {
      apiVersion: 'apps/v1', kind: 'ReplicaSet',
      metadata: {
        name: 'checkout-7d9f8c6b5', namespace: NS, labels,
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'checkout', uid: deployment.metadata.uid, controller: true }],
      },
      spec: { replicas: 1, selector: { matchLabels: labels }, template },
    });
    return rs.metadata.uid;
  }

  before(async () => {
    kube = await startKubeApiServer();
    trustCa(kube.ca);
    await api('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    const rsUid = await createOwners();
    await createPod(NS, 'checkout-7d9f8c6b5-x2x9z', ID, {
      labels: { 'app.kubernetes.io/name': 'checkout', 'pod-template-hash': '7d9f8c6b5' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'checkout-7d9f8c6b5', uid: rsUid, controller: true }],
    });
    await api('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'other' } });
    await createPod('other', 'intruder', OTHER_ID, { labels: { app: 'intruder' } });
    collector = await startCollector();
    server = await startNodeServer(); // no OTEL_SERVICE_NAME: the pod's label names the service
    other = await startNodeServer();
    mkdirSync(scope, { recursive: true });
    mkdirSync(otherScope, { recursive: true });
    writeFileSync(join(scope, 'cgroup.procs'), `${server.pid}\n`);
    writeFileSync(join(otherScope, 'cgroup.procs'), `${other.pid}\n`);
    agent = await startAgent([
      '--node-name', 'node-a', '--kubeconfig', kube.kubeconfigPath, '--namespace', NS, '--otlp-endpoint', collector.httpEndpoint,
    ]);
  });

  after(async () => {
    await agent?.stop();
    for (const s of [server, other, shopAfter, otherAfter]) await s?.stop();
    await collector?.stop();
    await kube?.stop();
    for (const dir of [scope, otherScope]) {
      if (existsSync(dir)) await waitFor('empty cgroup removed', () => { try { rmdirSync(dir); return true; } catch { return undefined; } }, 5_000);
    }
    if (existsSync(slice)) rmdirSync(slice);
  });

  it('records and spans carry the pod', async () => {
    await waitFor('the pod watch synced', async () => {
      const h = await agent.get<{ kubernetes: { synced: boolean } }>('/health');
      return h.body.kubernetes.synced ? true : undefined;
    });
    const client = new RawHttpClient(server.port);
    for (let i = 0; i < 3; i++) await client.request(getRequest(`/orders/${i}`, { 'X-Correlation-ID': `k8s-${i}` }));
    await client.close();
    const records = await waitFor('3 records of the pod', async () => {
      const r = await agent.get<{ count: number; requests: RequestRecord[] }>(`/api/requests?namespace=${NS}&pod=checkout-7d9f8c6b5-x2x9z`);
      return r.body.count === 3 ? r.body.requests : undefined;
    });
    for (const r of records) assert.equal(r.service_name, 'checkout', 'service.name from app.kubernetes.io/name');

    const spans = await waitFor('the spans in the collector', () => {
      const s = collector.spans().filter((x) => String(x.attrs['perfcatch.correlation_id'] ?? '').startsWith('k8s-'));
      return s.length === 3 ? s : undefined;
    });
    const resource = spans[0]!.resource;
    assert.equal(resource['service.name'], 'checkout');
    assert.equal(resource['k8s.namespace.name'], NS);
    assert.equal(resource['k8s.pod.name'], 'checkout-7d9f8c6b5-x2x9z');
    assert.equal(resource['k8s.container.name'], 'app');
    assert.equal(resource['k8s.node.name'], 'node-a');
    assert.equal(resource['k8s.deployment.name'], 'checkout', "through the ReplicaSet's owner");
    assert.match(String(resource['k8s.pod.uid']), /^[0-9a-f-]{36}$/);

    // The other namespace's pod is turned away in the kernel: no records, counted as filtered.
    const intruder = new RawHttpClient(other.port);
    for (let i = 0; i < 2; i++) await intruder.request(getRequest('/steal', { 'X-Correlation-ID': `intruder-${i}` }));
    await intruder.close();
    const filtered = await waitFor('the intruder connection filtered in the kernel', async () => {
      const h = await agent.get<{ counters: { kernel: { conn_filtered: number } } }>('/health');
      return h.body.counters.kernel.conn_filtered > 0 ? h.body.counters.kernel.conn_filtered : undefined;
    });
    assert.ok(filtered >= 1);
    const stolen = await agent.get<{ count: number }>('/api/requests?correlation_id_regex=%5Eintruder&since=60');
    assert.equal(stolen.body.count, 0, 'nothing recorded for the other namespace');

    const metrics = await agent.metrics();
    const line = metrics.split('\n').find((l) => l.startsWith('perfcatch_requests_total{') && l.includes('service="checkout"'));
    assert.ok(line?.endsWith(',namespace="shop",pod="checkout-7d9f8c6b5-x2x9z"} 3'), line);
  });

  it("pods started after the agent: the namespace's recorded; the other namespace's, calling into it, yields no record and no dependency", async () => {
    // Started in their pods' cgroups, as a container runtime starts them.
    const inPod = (dir: string) =>
      startServer('sh', ['-c', `echo $$ > ${join(dir, 'cgroup.procs')} && exec "$0" "$@"`, process.execPath, join(ROOT, 'test', 'servers', 'node-http-server.mjs'), '0']);
    shopAfter = await inPod(scope);
    otherAfter = await inPod(otherScope);
    const shop = shopAfter;
    const ids: string[] = [];
    const shopClient = new RawHttpClient(shop.port);
    for (let i = 0; i < 3; i++) {
      ids.push(`shop-after-${i}`);
      assert.equal((await shopClient.request(getRequest(`/after/${i}`, { 'X-Correlation-ID': `shop-after-${i}` }))).status, 200);
    }
    await shopClient.close();
    // Both other-namespace servers (before and after the agent) call the shop pods while serving.
    const calls = [
      { from: otherAfter, to: shop.port, label: 'intruder-after' },
      { from: other, to: server.port, label: 'intruder-before' },
    ];
    for (const { from, to, label } of calls) {
      const c = new RawHttpClient(from.port);
      assert.equal((await c.request(getRequest(`/warm?to=${to}`))).status, 200);
      for (let i = 0; i < 3; i++) {
        const res = await c.request(getRequest(`/fanout?to=${to}`, { 'X-Correlation-ID': `${label}-${i}` }));
        assert.equal(res.status, 200, res.body.toString());
      }
      await c.close();
    }
    // Each shop server serves one /warm-dep and, per /fanout, a /dep-new and a /dep-pooled.
    const isCall = (r: RequestRecord) => /^\/(warm-dep|dep-new|dep-pooled)$/.test(r.http_path ?? '');
    const all = await waitFor("the shop pods' requests", async () => {
      const r = (await agent.get<{ requests: RequestRecord[] }>('/api/requests?limit=10000&since=60')).body.requests;
      const mine = r.filter((x) => ids.includes(x.correlation_id ?? ''));
      const called = r.filter(isCall);
      return mine.length >= ids.length && called.length >= 2 * 7 ? r : undefined;
    });
    const mine = all.filter((x) => ids.includes(x.correlation_id ?? ''));
    assert.deepEqual(mine.map((r) => r.correlation_id).sort(), ids.sort());
    for (const r of mine) assert.equal(r.namespace, NS);
    for (const port of [shop.port, server.port]) {
      const called = all.filter((r) => r.local_port === port && isCall(r));
      assert.equal(called.length, 7, `port ${port}: the other namespace's calls, recorded once each by the shop pod`);
      for (const r of called) assert.equal(r.namespace, NS);
    }
    const otherPids = new Set([other.pid, otherAfter.pid]);
    const leaked = all.filter((r) => otherPids.has(r.pid) || r.correlation_id?.startsWith('intruder') || r.namespace === 'other');
    assert.deepEqual(leaked.map((r) => `${r.pid} ${r.http_path}`), [], 'nothing recorded for the other namespace');
    assert.deepEqual(all.filter((r) => r.dependencies.length > 0).map((r) => r.http_path), [], 'no dependency');
    const kernel = (await agent.get<{ counters: { kernel: Record<string, number> } }>('/health')).body.counters.kernel;
    assert.equal(kernel.client_conns, 0, "no outbound connection of the other namespace's pods tracked");
    assert.equal(kernel.dependencies, 0);
  });
});
