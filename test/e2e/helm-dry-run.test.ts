/**
 * The Helm chart (charts/perfcatch) against a real Kubernetes API server: every object the chart
 * renders for Kubernetes 1.34 in every deployment mode (the default values.yaml and each
 * values-<mode>.yaml preset) and for the announced install command is submitted to a real
 * kube-apiserver 1.34 with a server-side dry run (?dryRun=All, fieldValidation=Strict), so it goes
 * through the API server's own defaulting, validation and admission, and must be accepted. The
 * release namespace is created for real first (as `--create-namespace` would); nothing else is
 * stored, which the test checks at the end.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CHART_DIR, KUBE_VERSION, helm, helmBinary, parseYamlStreams, type Manifest } from '../harness/helm.ts';
import { startKubeApiServer, trustCa, type RunningKubeApiServer } from '../harness/kube-apiserver.ts';

const RELEASE = 'perfcatch';
const NAMESPACE = 'perfcatch';
/** The install command of the announcement and the chart's README, verbatim. */
const INSTALL_COMMAND = 'helm install perfcatch charts/perfcatch -n perfcatch --create-namespace --set config.namespace=my-app';

/**
 * REST resources of every kind the chart may render: group/version, plural, and whether it is
 * namespaced. A kind missing here fails the test rather than being skipped.
 */
const RESOURCES: Record<string, { plural: string; namespaced: boolean }> = {
  'v1/ConfigMap': { plural: 'configmaps', namespaced: true },
  'v1/Secret': { plural: 'secrets', namespaced: true },
  'v1/Service': { plural: 'services', namespaced: true },
  'v1/ServiceAccount': { plural: 'serviceaccounts', namespaced: true },
  'v1/PersistentVolumeClaim': { plural: 'persistentvolumeclaims', namespaced: true },
  'apps/v1/DaemonSet': { plural: 'daemonsets', namespaced: true },
  'apps/v1/Deployment': { plural: 'deployments', namespaced: true },
  'apps/v1/StatefulSet': { plural: 'statefulsets', namespaced: true },
  'rbac.authorization.k8s.io/v1/Role': { plural: 'roles', namespaced: true },
  'rbac.authorization.k8s.io/v1/RoleBinding': { plural: 'rolebindings', namespaced: true },
  'rbac.authorization.k8s.io/v1/ClusterRole': { plural: 'clusterroles', namespaced: false },
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': { plural: 'clusterrolebindings', namespaced: false },
  'networking.k8s.io/v1/NetworkPolicy': { plural: 'networkpolicies', namespaced: true },
};

/**
 * Kinds not submitted. ServiceMonitor is a prometheus-operator CRD the bare API server does not
 * serve (its shape is checked in helm-chart.test.ts).
 */
const SKIPPED = new Set(['monitoring.coreos.com/v1/ServiceMonitor']);

/** The REST collection path an object is created in: /api/v1/... for core, /apis/<group>/... otherwise. */
function collectionPath(d: Manifest): string {
  const key = `${d.apiVersion}/${d.kind}`;
  const r = RESOURCES[key];
  if (!r) throw new Error(`no REST mapping for ${key} (${d.metadata.name}): add it to RESOURCES`);
  const prefix = d.apiVersion.includes('/') ? `/apis/${d.apiVersion}` : `/api/${d.apiVersion}`;
  if (!r.namespaced) {
    assert.equal(d.metadata.namespace, undefined, `${key} ${d.metadata.name} is cluster-scoped but has a namespace`);
    return `${prefix}/${r.plural}`;
  }
  return `${prefix}/namespaces/${encodeURIComponent(d.metadata.namespace ?? NAMESPACE)}/${r.plural}`;
}

interface Render {
  name: string;
  /** helm template arguments after the chart. */
  args: string[];
}

/** The default values and every values-<mode>.yaml preset found in the chart. */
const PRESETS = readdirSync(CHART_DIR)
  .filter((f) => /^values-.+\.yaml$/.test(f))
  .sort();
const RENDERS: Render[] = [
  { name: 'default values.yaml', args: ['template', RELEASE, CHART_DIR, '-n', NAMESPACE] },
  ...PRESETS.map((f) => ({ name: f, args: ['template', RELEASE, CHART_DIR, '-n', NAMESPACE, '-f', join(CHART_DIR, f)] })),
  // `helm install --dry-run` needs a reachable cluster in Helm 3, so the same arguments go to
  // `helm template`, which takes every install flag.
  { name: `install command: ${INSTALL_COMMAND}`, args: ['template', ...INSTALL_COMMAND.split(' ').slice(2)] },
  // The API beyond the pod: its token Secret, the http-api ports and the NetworkPolicy rule.
  {
    name: 'api.expose with NetworkPolicy peers',
    args: ['template', RELEASE, CHART_DIR, '-n', NAMESPACE, '--set', 'api.expose=true', '--set-json',
      'networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]'],
  },
];

interface Status {
  kind?: string;
  metadata?: { name?: string; uid?: string };
  code?: number;
  reason?: string;
  message?: string;
}

describe('Helm chart charts/perfcatch: server-side dry run on a real kube-apiserver', () => {
  let kube: RunningKubeApiServer;
  const rendered = new Map<string, Manifest[]>();

  async function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: Status; warnings: string[] }> {
    const res = await fetch(`${kube.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${kube.token}`, accept: 'application/json', ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    let parsed: Status;
    try {
      parsed = JSON.parse(text) as Status;
    } catch {
      parsed = { message: text };
    }
    const warning = res.headers.get('warning');
    return { status: res.status, body: parsed, warnings: warning ? [warning] : [] };
  }

  before(
    async () => {
      assert.ok(INSTALL_COMMAND.startsWith('helm install '));
      assert.ok(PRESETS.length > 0, 'the chart has values-<mode>.yaml presets');
      const helmBin = helmBinary();
      const texts = RENDERS.map((r) => helm(helmBin, [...r.args, '--kube-version', KUBE_VERSION]));
      parseYamlStreams(texts).forEach((docs, i) => rendered.set(RENDERS[i]!.name, docs as Manifest[]));
      kube = await startKubeApiServer();
      trustCa(kube.ca);
      // What --create-namespace does, for real: the dry runs below need the namespace to exist.
      const ns = await api('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } });
      assert.equal(ns.status, 201, JSON.stringify(ns.body));
    },
    { timeout: 1_800_000 }, // the first run on a machine builds helm and kube-apiserver
  );
  after(async () => {
    await kube?.stop();
  });

  for (const r of RENDERS) {
    it(`accepts every object of ${r.name}`, async (t) => {
      const docs = rendered.get(r.name)!;
      assert.ok(docs.length > 0, 'renders objects');
      const rejected: string[] = [];
      const counts = new Map<string, number>();
      let skipped = 0;
      for (const d of docs) {
        const id = `${d.kind} ${d.metadata.namespace ? `${d.metadata.namespace}/` : ''}${d.metadata.name}`;
        if (SKIPPED.has(`${d.apiVersion}/${d.kind}`)) {
          skipped++;
          continue;
        }
        const res = await api('POST', `${collectionPath(d)}?dryRun=All&fieldValidation=Strict`, d);
        if (res.status < 200 || res.status >= 300) {
          rejected.push(`${id}: HTTP ${res.status} ${res.body.reason ?? ''}: ${res.body.message ?? JSON.stringify(res.body)}`);
          continue;
        }
        assert.equal(res.body.kind, d.kind, `${id}: response kind`);
        assert.equal(res.body.metadata?.name, d.metadata.name, `${id}: response name`);
        for (const w of res.warnings) t.diagnostic(`${id}: warning: ${w}`);
        counts.set(d.kind, (counts.get(d.kind) ?? 0) + 1);
      }
      const accepted = [...counts.values()].reduce((a, b) => a + b, 0);
      t.diagnostic(
        `${accepted} accepted (${[...counts].map(([k, n]) => `${k} ${n}`).join(', ')})${skipped ? `, ${skipped} ServiceMonitor skipped` : ''}`,
      );
      assert.deepEqual(rejected, [], 'every rendered object is accepted by the API server');
      assert.equal(accepted + skipped, docs.length);
    });
  }

  it('stored nothing: the dry runs left the API server without any of the chart objects', async () => {
    for (const path of [
      `/apis/apps/v1/namespaces/${NAMESPACE}/daemonsets`,
      `/apis/apps/v1/namespaces/${NAMESPACE}/deployments`,
      `/api/v1/namespaces/${NAMESPACE}/configmaps?labelSelector=${encodeURIComponent('app.kubernetes.io/instance=perfcatch')}`,
      `/apis/rbac.authorization.k8s.io/v1/clusterroles?labelSelector=${encodeURIComponent('app.kubernetes.io/instance=perfcatch')}`,
    ]) {
      const res = await fetch(`${kube.url}${path}`, { headers: { authorization: `Bearer ${kube.token}`, accept: 'application/json' } });
      assert.equal(res.status, 200, path);
      assert.deepEqual(((await res.json()) as { items: unknown[] }).items, [], path);
    }
  });
});
