/**
 * The Helm chart (charts/perfcatch), with no cluster: a pinned Helm 3 lints it (--strict) and
 * renders it for Kubernetes 1.34 in every deployment mode (the values-<mode>.yaml presets), the
 * rendered objects are checked here (the agent's least-privilege DaemonSet, RBAC, which bundled
 * components each mode deploys and how they are wired to each other and to the agent's flags),
 * and every rendered object is validated against the Kubernetes 1.34 schemas
 * (kubernetes-validate, strict). The bundled collector's configuration is validated by a real
 * OpenTelemetry Collector of the same release (`otelcol validate`).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { otelcolBinary } from '../harness/collector.ts';
import {
  CHART_DIR,
  KUBE_VERSION,
  ensureKubernetesValidate,
  helm,
  helmBinary,
  kubernetesValidate,
  parseYamlStreams,
  type Manifest,
} from '../harness/helm.ts';

const RELEASE = 'perfcatch';
const NAMESPACE = 'perfcatch';
/** The install command of the announcement and the chart's README, verbatim. */
const INSTALL_COMMAND = 'helm install perfcatch charts/perfcatch -n perfcatch --create-namespace --set config.namespace=my-app';
const CAPABILITIES = ['BPF', 'PERFMON', 'SYS_RESOURCE', 'SYS_PTRACE', 'DAC_READ_SEARCH'];
const AGENT_ENV_KEYS = [
  'PERFCATCH_API_HOST',
  'PERFCATCH_API_PORT',
  'PERFCATCH_BUFFER_SIZE',
  'PERFCATCH_OTLP_ENDPOINT',
  'PERFCATCH_PORTS',
  'PERFCATCH_CORRELATION_HEADERS',
  'PERFCATCH_DB_PATH',
  'PERFCATCH_REMOTE_WRITE_URL',
  'PERFCATCH_NAMESPACE',
  'PERFCATCH_PODS',
];

type Component = 'agent' | 'prometheus' | 'grafana' | 'victoriametrics' | 'otel-collector' | 'jaeger';

interface Mode {
  name: string;
  /** Preset file under charts/perfcatch, or null for the chart's defaults. */
  valuesFile: string | null;
  /** Every app.kubernetes.io/component label the mode's objects carry. */
  components: Component[];
}

const MODES: Mode[] = [
  { name: 'default (full stack)', valuesFile: null, components: ['agent', 'prometheus', 'grafana'] },
  { name: 'full stack', valuesFile: 'values-full-stack.yaml', components: ['agent', 'prometheus', 'grafana'] },
  { name: 'with VictoriaMetrics', valuesFile: 'values-victoriametrics.yaml', components: ['agent', 'prometheus', 'grafana', 'victoriametrics'] },
  { name: 'existing Prometheus', valuesFile: 'values-existing-prometheus.yaml', components: ['agent'] },
  { name: 'standalone', valuesFile: 'values-standalone.yaml', components: ['agent'] },
  { name: 'OTLP, bundled collector and Jaeger', valuesFile: 'values-otlp.yaml', components: ['agent', 'otel-collector', 'jaeger'] },
  { name: 'OTLP, existing collector', valuesFile: 'values-otlp-existing.yaml', components: ['agent'] },
];

/** Renders that are not presets but switch the remaining branches of the templates. */
const VARIANTS: { name: string; args: string[] }[] = [
  {
    name: 'everything on',
    args: ['--set', 'serviceMonitor.enabled=true,victoriametrics.enabled=true,otelCollector.enabled=true,jaeger.enabled=true,sqlite.enabled=true'],
  },
  {
    name: 'no persistence, Grafana on an external Prometheus, existing Grafana secret',
    args: [
      '--set',
      'prometheus.enabled=false,grafana.prometheusUrl=http://prometheus.monitoring.svc:9090,grafana.existingSecret=my-grafana,victoriametrics.enabled=true,victoriametrics.persistence.enabled=false',
    ],
  },
  { name: 'collector forwarding to an existing backend', args: ['-f', 'values-otlp.yaml', '--set', 'jaeger.enabled=false,otelCollector.forwardEndpoint=tempo.tracing.svc:4317'] },
  { name: 'collector alone (debug exporter)', args: ['-f', 'values-otlp.yaml', '--set', 'jaeger.enabled=false'] },
  {
    name: 'API exposed behind a token',
    args: ['--set', 'api.expose=true', '--set-json', 'networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]'],
  },
  {
    name: 'lists, extra env and other names',
    args: [
      '--set',
      'fullnameOverride=pc,config.ports={8080,8443},config.correlationHeaders={x-order-id},config.pods={web-1,web-2},config.extraEnv.PERFCATCH_KEEP_QUERY=true,serviceAccount.name=pc-agent,grafana.service.name=',
    ],
  },
];

// ---------------------------------------------------------------------------------------------
// Small accessors over rendered objects.

function ofKind(docs: Manifest[], kind: string): Manifest[] {
  return docs.filter((d) => d.kind === kind);
}

function only(docs: Manifest[], kind: string, what = kind): Manifest {
  const found = ofKind(docs, kind);
  assert.equal(found.length, 1, `exactly one ${what}, got ${found.map((d) => d.metadata.name).join(', ') || 'none'}`);
  return found[0]!;
}

function component(d: Manifest): string | undefined {
  return d.metadata.labels?.['app.kubernetes.io/component'];
}

function ofComponent(docs: Manifest[], kind: string, c: Component): Manifest {
  const found = ofKind(docs, kind).filter((d) => component(d) === c);
  assert.equal(found.length, 1, `exactly one ${kind} of ${c}, got ${found.length}`);
  return found[0]!;
}

function named(docs: Manifest[], kind: string, name: string): Manifest {
  const found = docs.find((d) => d.kind === kind && d.metadata.name === name);
  assert.ok(found, `${kind} ${name} is rendered`);
  return found;
}

const WORKLOAD_KINDS = ['DaemonSet', 'Deployment', 'StatefulSet'];

function podSpec(w: Manifest) {
  return w.spec.template.spec;
}

function agentDaemonSet(docs: Manifest[]): Manifest {
  return only(docs, 'DaemonSet', 'agent DaemonSet');
}

function agentContainer(docs: Manifest[]) {
  const containers = podSpec(agentDaemonSet(docs)).containers;
  assert.equal(containers.length, 1, 'one agent container');
  return containers[0];
}

/** The agent's PERFCATCH_* variables: the data of the ConfigMap its container's envFrom names. */
function agentEnv(docs: Manifest[]): Record<string, string> {
  const refs = (agentContainer(docs).envFrom ?? []) as { configMapRef?: { name: string } }[];
  assert.equal(refs.length, 1, 'the agent takes its flags from one ConfigMap');
  return named(docs, 'ConfigMap', refs[0]!.configMapRef!.name).data as Record<string, string>;
}

/** The Service whose selector picks the pods of `c`. */
function serviceOf(docs: Manifest[], c: Component): Manifest {
  const workload = docs.find((d) => WORKLOAD_KINDS.includes(d.kind) && component(d) === c);
  assert.ok(workload, `a workload for ${c}`);
  const podLabels = workload.spec.template.metadata.labels as Record<string, string>;
  const services = ofKind(docs, 'Service').filter((s) => Object.entries(s.spec.selector as Record<string, string>).every(([k, v]) => podLabels[k] === v));
  assert.equal(services.length, 1, `one Service selects ${c}`);
  return services[0]!;
}

/** http://<service>.<namespace>.svc:<port> of the Service of `c`, by port name. */
function serviceUrl(docs: Manifest[], c: Component, portName: string): string {
  const svc = serviceOf(docs, c);
  const port = (svc.spec.ports as { name: string; port: number }[]).find((p) => p.name === portName);
  assert.ok(port, `Service ${svc.metadata.name} has a port ${portName}`);
  return `http://${svc.metadata.name}.${NAMESPACE}.svc:${port.port}`;
}

/** Embedded YAML files of ConfigMaps, parsed in one go in before() (one Python process). */
const embeddedYaml = new Map<string, unknown>();

function configFile(docs: Manifest[], configMapName: string, key: string): unknown {
  const text = (named(docs, 'ConfigMap', configMapName).data as Record<string, string>)[key];
  assert.ok(text, `ConfigMap ${configMapName} has ${key}`);
  if (!embeddedYaml.has(text)) embeddedYaml.set(text, parseYamlStreams([text])[0]![0]);
  return embeddedYaml.get(text);
}

// ---------------------------------------------------------------------------------------------

describe('Helm chart charts/perfcatch', () => {
  let helmBin: string;
  const rendered = new Map<string, Manifest[]>();
  let work: string;

  const templateArgs = (extra: string[]) => ['template', RELEASE, CHART_DIR, '-n', NAMESPACE, '--kube-version', KUBE_VERSION, ...extra];
  const modeArgs = (m: Mode) => (m.valuesFile ? ['-f', join(CHART_DIR, m.valuesFile)] : []);
  const docsOf = (m: Mode) => rendered.get(`mode:${m.name}`)!;

  before(() => {
    helmBin = helmBinary();
    ensureKubernetesValidate();
    work = mkdtempSync(join(tmpdir(), 'perfcatch-helm-'));
    const renders: [string, string][] = [];
    for (const m of MODES) renders.push([`mode:${m.name}`, helm(helmBin, templateArgs(modeArgs(m)))]);
    for (const v of VARIANTS) renders.push([`variant:${v.name}`, helm(helmBin, templateArgs(v.args), CHART_DIR)]);
    const parsed = parseYamlStreams(renders.map(([, text]) => text));
    renders.forEach(([key], i) => rendered.set(key, parsed[i] as Manifest[]));
    const texts = [...rendered.values()]
      .flat()
      .filter((d) => d.kind === 'ConfigMap')
      .flatMap((d) => Object.entries((d.data ?? {}) as Record<string, string>).filter(([k]) => /\.ya?ml$/.test(k)).map(([, v]) => v));
    const unique = [...new Set(texts)];
    parseYamlStreams(unique).forEach((docs, i) => embeddedYaml.set(unique[i]!, docs[0]));
  });

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('has a test for every values-<mode>.yaml preset', () => {
    const presets = readdirSync(CHART_DIR).filter((f) => /^values-.+\.yaml$/.test(f));
    assert.deepEqual(presets.sort(), MODES.flatMap((m) => (m.valuesFile ? [m.valuesFile] : [])).sort());
  });

  it('passes helm lint --strict with the default values and every preset', () => {
    for (const m of MODES) {
      const out = helm(helmBin, ['lint', '--strict', CHART_DIR, '--kube-version', KUBE_VERSION, ...modeArgs(m)]);
      assert.match(out, /1 chart\(s\) linted, 0 chart\(s\) failed/, `${m.name}: ${out}`);
      assert.doesNotMatch(out, /\[(WARNING|ERROR)\]/, `${m.name}: ${out}`);
    }
    // values.schema.json rejects a misspelled component, which would otherwise be ignored.
    assert.throws(() => helm(helmBin, ['lint', '--strict', CHART_DIR, '--set', 'victoriaMetrics.enabled=true']), /additional properties 'victoriaMetrics' not allowed/);
  });

  for (const m of MODES) {
    describe(`mode: ${m.name}`, () => {
      it('renders exactly its components, with the standard labels, images pinned by tag', () => {
        const docs = docsOf(m);
        const found = new Set(docs.map((d) => component(d) ?? `(no component label on ${d.kind} ${d.metadata.name})`));
        assert.deepEqual([...found].sort(), [...m.components].sort());
        for (const d of docs) {
          const labels = d.metadata.labels ?? {};
          const where = `${d.kind} ${d.metadata.name}`;
          assert.equal(labels['app.kubernetes.io/name'], 'perfcatch', where);
          assert.equal(labels['app.kubernetes.io/instance'], RELEASE, where);
          assert.equal(labels['app.kubernetes.io/managed-by'], 'Helm', where);
          assert.match(labels['helm.sh/chart'] ?? '', /^perfcatch-\d+\.\d+\.\d+/, where);
          assert.ok(labels['app.kubernetes.io/version'], where);
          if (d.kind.startsWith('Cluster')) assert.equal(d.metadata.namespace, undefined, where);
          else assert.equal(d.metadata.namespace, NAMESPACE, where);
        }
        for (const w of docs.filter((d) => WORKLOAD_KINDS.includes(d.kind))) {
          for (const c of podSpec(w).containers as { name: string; image: string }[]) {
            assert.match(c.image, /^[^:@]+(\/[^:@]+)*:[\w][\w.-]*$/, `${w.metadata.name}/${c.name} image ${c.image} has a tag`);
            assert.doesNotMatch(c.image, /:latest$/, `${c.image} is pinned`);
          }
        }
      });

      it('runs the agent as a least-privilege DaemonSet: hostPID, exact capabilities, not privileged, read-only host mounts', () => {
        const docs = docsOf(m);
        const ds = agentDaemonSet(docs);
        const spec = podSpec(ds);
        assert.equal(spec.hostPID, true);
        assert.notEqual(spec.hostNetwork, true);
        const c = agentContainer(docs);
        const sc = c.securityContext;
        assert.deepEqual([...sc.capabilities.add].sort(), [...CAPABILITIES].sort(), 'capabilities added');
        assert.equal(sc.capabilities.add.length, CAPABILITIES.length, 'no duplicate capability');
        assert.deepEqual(sc.capabilities.drop, ['ALL']);
        assert.ok(sc.privileged === undefined || sc.privileged === false, 'not privileged');
        assert.equal(sc.allowPrivilegeEscalation, false);
        assert.equal(sc.readOnlyRootFilesystem, true);
        assert.equal(spec.securityContext?.privileged, undefined);

        // Host paths: each volume -> its mount.
        const volumes = new Map<string, { path: string; type?: string }>();
        for (const v of spec.volumes as { name: string; hostPath?: { path: string; type?: string } }[]) if (v.hostPath) volumes.set(v.name, v.hostPath);
        const mounts = c.volumeMounts as { name: string; mountPath: string; readOnly?: boolean }[];
        const hostMount = (hostPath: string) => {
          const vol = [...volumes].find(([, h]) => h.path === hostPath);
          assert.ok(vol, `a hostPath volume for ${hostPath}`);
          const mount = mounts.filter((mt) => mt.name === vol[0]);
          assert.equal(mount.length, 1, `${hostPath} is mounted once`);
          return mount[0]!;
        };
        for (const [hostPath, mountPath] of [
          ['/sys/kernel/btf', '/sys/kernel/btf'],
          ['/proc', '/host/proc'],
          ['/sys/kernel/tracing', '/sys/kernel/tracing'],
        ] as const) {
          const mt = hostMount(hostPath);
          assert.equal(mt.mountPath, mountPath, `${hostPath} mounted at ${mountPath}`);
          assert.equal(mt.readOnly, true, `${hostPath} is mounted read-only`);
        }
        // bpffs is writable: the loader pins its maps and links there (--bpf-pin-dir).
        const bpffs = hostMount('/sys/fs/bpf');
        assert.equal(bpffs.mountPath, '/sys/fs/bpf');
        assert.notEqual(bpffs.readOnly, true, '/sys/fs/bpf is writable');
        // The other writable host path is the SQLite directory of the standalone mode.
        const env = agentEnv(docs);
        for (const mt of mounts.filter((x) => volumes.has(x.name) && !x.readOnly && x.mountPath !== '/sys/fs/bpf')) {
          assert.ok(env.PERFCATCH_DB_PATH, `writable host mount ${mt.mountPath} only for SQLite`);
          assert.ok(env.PERFCATCH_DB_PATH.startsWith(`${mt.mountPath}/`), `${mt.mountPath} holds PERFCATCH_DB_PATH`);
        }

        // NODE_NAME from the downward API.
        const nodeName = (c.env as { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[]).find((e) => e.name === 'NODE_NAME');
        assert.equal(nodeName?.valueFrom?.fieldRef?.fieldPath, 'spec.nodeName');

        // Probes on /health, the API port, resources, tolerations for every node.
        const port = (c.ports as { name: string; containerPort: number }[]).find((p) => p.name === 'http-metrics');
        assert.equal(port?.containerPort, 9091);
        assert.equal((c.ports as { name: string }[]).some((p) => p.name === 'http-api'), false, 'the API is not a container port unless api.expose');
        for (const probe of [c.livenessProbe, c.readinessProbe]) {
          assert.equal(probe?.httpGet?.path, '/health');
          assert.ok(probe.httpGet.port === 'http-metrics' || probe.httpGet.port === 9091);
        }
        assert.deepEqual(sc.seccompProfile, { type: 'RuntimeDefault' });
        for (const k of ['requests', 'limits']) {
          assert.ok(c.resources?.[k]?.cpu, `resources.${k}.cpu`);
          assert.ok(c.resources?.[k]?.memory, `resources.${k}.memory`);
        }
        assert.ok(
          (spec.tolerations as { key?: string; operator?: string }[]).some((t) => t.operator === 'Exists' && t.key === undefined),
          'tolerates every taint',
        );

        // Scrape annotations on the pods.
        const ann = ds.spec.template.metadata.annotations as Record<string, string>;
        assert.equal(ann['prometheus.io/scrape'], 'true');
        assert.equal(ann['prometheus.io/port'], '9091', 'the metrics port: /metrics apart from /api/*');
        assert.equal(ann['prometheus.io/path'], '/metrics');
      });

      it('gives the agent its flags through a ConfigMap of PERFCATCH_* variables', () => {
        const env = agentEnv(docsOf(m));
        for (const k of AGENT_ENV_KEYS) assert.ok(k in env, `${k} is in the agent's ConfigMap`);
        for (const [k, v] of Object.entries(env)) {
          assert.match(k, /^(PERFCATCH|OTEL)_[A-Z_]+$/, k);
          assert.equal(typeof v, 'string', `${k} is a string`);
        }
        // Issue 13, finding 4: request data on loopback, /metrics and /health on the pod address.
        assert.equal(env.PERFCATCH_API_HOST, '127.0.0.1');
        assert.equal(env.PERFCATCH_API_PORT, '9090');
        assert.equal(env.PERFCATCH_METRICS_HOST, '0.0.0.0');
        assert.equal(env.PERFCATCH_METRICS_PORT, '9091');
        assert.equal(env.PERFCATCH_BUFFER_SIZE, '50000');
      });

      it('exposes the agent\'s metrics on a Service port 9091 named http-metrics', () => {
        const docs = docsOf(m);
        const svc = serviceOf(docs, 'agent');
        assert.deepEqual(
          (svc.spec.ports as { name: string; port: number; targetPort: string | number }[]).map((p) => [p.name, p.port, p.targetPort]),
          [['http-metrics', 9091, 'http-metrics']],
        );
        assert.equal(ofKind(docs, 'ServiceMonitor').length, 0, 'no ServiceMonitor unless serviceMonitor.enabled');
      });
    });
  }

  it('grants the agent get/list/watch on pods and nothing else, bound to its ServiceAccount', () => {
    for (const m of MODES) {
      const docs = docsOf(m);
      const sa = ofComponent(docs, 'ServiceAccount', 'agent');
      assert.equal(podSpec(agentDaemonSet(docs)).serviceAccountName, sa.metadata.name);
      const role = only(docs, 'ClusterRole');
      assert.deepEqual(role.rules, [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }]);
      const binding = only(docs, 'ClusterRoleBinding');
      assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name });
      assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: NAMESPACE }]);
      // Nothing else in the chart is cluster-scoped, and namespaced Roles only read pods too.
      for (const r of ofKind(docs, 'Role')) assert.deepEqual(r.rules, [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }]);
    }
  });

  it('wires every Service to a container port and every referenced ConfigMap, Secret and PVC exists', () => {
    for (const [key, docs] of rendered) {
      for (const svc of ofKind(docs, 'Service')) {
        const selector = svc.spec.selector as Record<string, string>;
        const targets = docs.filter(
          (d) => WORKLOAD_KINDS.includes(d.kind) && Object.entries(selector).every(([k, v]) => d.spec.template.metadata.labels[k] === v),
        );
        assert.equal(targets.length, 1, `${key}: Service ${svc.metadata.name} selects one workload`);
        assert.deepEqual(targets[0]!.spec.selector.matchLabels, selector, `${key}: ${svc.metadata.name} selects by the workload's selector`);
        const ports = (podSpec(targets[0]!).containers as { ports?: { name: string; containerPort: number }[] }[]).flatMap((c) => c.ports ?? []);
        for (const p of svc.spec.ports as { targetPort: string | number }[]) {
          assert.ok(
            ports.some((cp) => cp.name === p.targetPort || cp.containerPort === p.targetPort),
            `${key}: ${svc.metadata.name} targetPort ${p.targetPort}`,
          );
        }
      }
      for (const w of docs.filter((d) => WORKLOAD_KINDS.includes(d.kind))) {
        const spec = podSpec(w);
        for (const v of spec.volumes ?? []) {
          if (v.configMap) named(docs, 'ConfigMap', v.configMap.name);
          if (v.secret) named(docs, 'Secret', v.secret.secretName);
          if (v.persistentVolumeClaim) named(docs, 'PersistentVolumeClaim', v.persistentVolumeClaim.claimName);
        }
        for (const c of spec.containers) {
          for (const e of c.envFrom ?? []) if (e.configMapRef) named(docs, 'ConfigMap', e.configMapRef.name);
          for (const e of c.env ?? []) {
            const ref = e.valueFrom?.secretKeyRef;
            if (ref && !(key.includes('existing Grafana secret') && ref.name === 'my-grafana')) {
              const secret = named(docs, 'Secret', ref.name);
              assert.ok(ref.key in secret.stringData, `${key}: Secret ${ref.name} has ${ref.key}`);
            }
          }
          const mountNames = new Set((spec.volumes ?? []).map((v: { name: string }) => v.name));
          for (const mt of c.volumeMounts ?? []) assert.ok(mountNames.has(mt.name), `${key}: ${w.metadata.name} mounts a declared volume ${mt.name}`);
        }
        if (spec.serviceAccountName) named(docs, 'ServiceAccount', spec.serviceAccountName);
      }
    }
  });

  it('full stack: Prometheus with a 5Gi PVC and 15d retention scraping the agents, Grafana (admin / perfcatch) with its datasource and dashboard', () => {
    for (const m of MODES.filter((x) => x.components.includes('prometheus'))) {
      const docs = docsOf(m);
      const env = agentEnv(docs);
      if (!m.components.includes('victoriametrics')) assert.equal(env.PERFCATCH_REMOTE_WRITE_URL, '');
      assert.equal(env.PERFCATCH_OTLP_ENDPOINT, '');
      assert.equal(env.PERFCATCH_DB_PATH, '');

      // Prometheus: PVC, retention, config.
      const prom = ofComponent(docs, 'Deployment', 'prometheus');
      const promSpec = podSpec(prom);
      const promContainer = promSpec.containers[0];
      assert.ok(promContainer.args.includes('--storage.tsdb.retention.time=15d'), promContainer.args.join(' '));
      const dataVolume = (promSpec.volumes as { name: string; persistentVolumeClaim?: { claimName: string } }[]).find((v) => v.persistentVolumeClaim);
      assert.ok(dataVolume, 'Prometheus stores on a PVC');
      const pvc = named(docs, 'PersistentVolumeClaim', dataVolume.persistentVolumeClaim!.claimName);
      assert.equal(pvc.spec.resources.requests.storage, '5Gi');
      assert.ok(promContainer.args.includes('--storage.tsdb.path=/prometheus'));
      assert.equal(
        (promContainer.volumeMounts as { name: string; mountPath: string }[]).find((v) => v.name === dataVolume.name)?.mountPath,
        '/prometheus',
      );
      const configVolume = (promSpec.volumes as { name: string; configMap?: { name: string } }[]).find((v) => v.configMap)!;
      const promConfig = configFile(docs, configVolume.configMap!.name, 'prometheus.yml') as {
        scrape_configs: {
          job_name: string;
          kubernetes_sd_configs: { role: string; namespaces: { names: string[] }; selectors: { label: string }[] }[];
          relabel_configs: { source_labels?: string[]; action?: string; regex?: string }[];
        }[];
      };
      const job = promConfig.scrape_configs.find((j) => j.job_name === 'perfcatch');
      assert.ok(job, 'a perfcatch scrape job');
      const sd = job.kubernetes_sd_configs[0]!;
      assert.equal(sd.role, 'pod');
      assert.deepEqual(sd.namespaces.names, [NAMESPACE]);
      // The selector matches the agent pods' labels.
      const agentLabels = agentDaemonSet(docs).spec.template.metadata.labels as Record<string, string>;
      for (const term of sd.selectors[0]!.label.split(',')) {
        const [k, v] = term.split('=');
        assert.equal(agentLabels[k!], v, `Prometheus selects agent pods by ${term}`);
      }
      assert.ok(
        job.relabel_configs.some(
          (r) => r.action === 'keep' && r.source_labels?.[0] === '__meta_kubernetes_pod_annotation_prometheus_io_scrape' && r.regex === 'true',
        ),
        'keeps pods annotated prometheus.io/scrape=true',
      );
      // Prometheus can discover pods in its namespace.
      const promRole = only(docs, 'RoleBinding');
      assert.deepEqual(promRole.subjects, [{ kind: 'ServiceAccount', name: promSpec.serviceAccountName, namespace: NAMESPACE }]);

      // Grafana: Service "grafana" on 3000, admin / perfcatch, Prometheus datasource, dashboards.
      const grafanaSvc = serviceOf(docs, 'grafana');
      assert.equal(grafanaSvc.metadata.name, 'grafana');
      assert.equal(grafanaSvc.spec.ports[0].port, 3000);
      const grafana = podSpec(ofComponent(docs, 'Deployment', 'grafana'));
      const gEnv = grafana.containers[0].env as { name: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
      const secretValue = (name: string) => {
        const ref = gEnv.find((e) => e.name === name)?.valueFrom?.secretKeyRef;
        assert.ok(ref, `${name} from a Secret`);
        return named(docs, 'Secret', ref.name).stringData[ref.key];
      };
      assert.equal(secretValue('GF_SECURITY_ADMIN_USER'), 'admin');
      assert.equal(secretValue('GF_SECURITY_ADMIN_PASSWORD'), 'perfcatch');
      const mountOf = (path: string) => {
        const mt = (grafana.containers[0].volumeMounts as { name: string; mountPath: string }[]).find((x) => x.mountPath === path);
        assert.ok(mt, `Grafana mounts ${path}`);
        const vol = (grafana.volumes as { name: string; configMap?: { name: string } }[]).find((v) => v.name === mt.name);
        return vol!.configMap!.name;
      };
      const datasources = configFile(docs, mountOf('/etc/grafana/provisioning/datasources'), 'datasources.yaml') as {
        datasources: { name: string; type: string; url: string; isDefault?: boolean; uid: string }[];
      };
      const promDs = datasources.datasources.find((d) => d.isDefault);
      assert.equal(promDs?.type, 'prometheus');
      assert.equal(promDs?.url, serviceUrl(docs, 'prometheus', 'http'));
      const provider = configFile(docs, mountOf('/etc/grafana/provisioning/dashboards'), 'perfcatch.yaml') as {
        providers: { type: string; options: { path: string } }[];
      };
      const dashboardsCm = named(docs, 'ConfigMap', mountOf(provider.providers[0]!.options.path));
      // Every dashboards/*.json file of the chart, each a JSON dashboard.
      const files = readdirSync(join(CHART_DIR, 'dashboards')).filter((f) => f.endsWith('.json'));
      assert.ok(files.includes('perfcatch.json'), 'charts/perfcatch/dashboards/perfcatch.json exists');
      assert.deepEqual(Object.keys(dashboardsCm.data).sort(), files.sort());
      for (const f of files) {
        assert.equal(dashboardsCm.data[f], readFileSync(join(CHART_DIR, 'dashboards', f), 'utf8'), `${f} is loaded verbatim`);
        const dashboard = JSON.parse(dashboardsCm.data[f]) as { title?: string; panels?: unknown[] };
        assert.ok(dashboard.title, `${f} has a title`);
        assert.ok(Array.isArray(dashboard.panels), `${f} has panels`);
      }
    }
  });

  it('with VictoriaMetrics: 30d retention, and the agent remote-writes to it', () => {
    const docs = docsOf(MODES.find((m) => m.valuesFile === 'values-victoriametrics.yaml')!);
    const vm = podSpec(ofComponent(docs, 'Deployment', 'victoriametrics')).containers[0];
    assert.ok(vm.args.includes('-retentionPeriod=30d'), vm.args.join(' '));
    const url = serviceUrl(docs, 'victoriametrics', 'http');
    assert.equal(url, `http://perfcatch-victoriametrics.${NAMESPACE}.svc:8428`);
    assert.equal(agentEnv(docs).PERFCATCH_REMOTE_WRITE_URL, `${url}/api/v1/write`);
    assert.equal(ofKind(docs, 'PersistentVolumeClaim').length, 2, 'Prometheus and VictoriaMetrics each have a PVC');
  });

  it('existing Prometheus: the agent alone, found through its pod annotations; a ServiceMonitor on request', () => {
    const docs = docsOf(MODES.find((m) => m.valuesFile === 'values-existing-prometheus.yaml')!);
    assert.deepEqual(docs.map((d) => d.kind).sort(), ['ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'DaemonSet', 'NetworkPolicy', 'Service', 'ServiceAccount']);
    const env = agentEnv(docs);
    assert.deepEqual([env.PERFCATCH_REMOTE_WRITE_URL, env.PERFCATCH_OTLP_ENDPOINT, env.PERFCATCH_DB_PATH], ['', '', '']);

    const all = rendered.get('variant:everything on')!;
    const sm = only(all, 'ServiceMonitor');
    assert.equal(sm.apiVersion, 'monitoring.coreos.com/v1');
    const agentSvc = serviceOf(all, 'agent');
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels as Record<string, string>)) assert.equal(agentSvc.metadata.labels?.[k], v, `ServiceMonitor selects the agent Service by ${k}`);
    assert.deepEqual(sm.spec.namespaceSelector, { matchNames: [NAMESPACE] });
    assert.equal(sm.spec.endpoints[0].port, 'http-metrics');
    assert.equal(sm.spec.endpoints[0].path, '/metrics');
    assert.equal(sm.spec.endpoints[0].honorLabels, true, "the agent's namespace/pod labels survive the scrape");
  });

  it('standalone: no Prometheus or Grafana, SQLite on a hostPath through PERFCATCH_DB_PATH', () => {
    const docs = docsOf(MODES.find((m) => m.valuesFile === 'values-standalone.yaml')!);
    assert.equal(ofKind(docs, 'Deployment').length, 0);
    assert.equal(ofKind(docs, 'PersistentVolumeClaim').length, 0);
    const env = agentEnv(docs);
    assert.equal(env.PERFCATCH_DB_PATH, '/var/lib/perfcatch/perfcatch.db');
    assert.equal(env.PERFCATCH_DB_RETENTION_HOURS, '168');
    assert.equal(env.PERFCATCH_DB_MAX_SIZE_MB, '1024');
    const spec = podSpec(agentDaemonSet(docs));
    const vol = (spec.volumes as { name: string; hostPath?: { path: string; type?: string } }[]).find((v) => v.hostPath?.path === '/var/lib/perfcatch');
    assert.ok(vol, 'a hostPath volume for the database');
    assert.equal(vol.hostPath!.type, 'DirectoryOrCreate');
    const mt = (spec.containers[0].volumeMounts as { name: string; mountPath: string; readOnly?: boolean }[]).find((x) => x.name === vol.name);
    assert.equal(mt?.mountPath, '/var/lib/perfcatch');
    assert.notEqual(mt?.readOnly, true, 'the database directory is writable');
  });

  it('OTLP: the agent sends to the bundled collector, which forwards to the bundled Jaeger; or to an existing collector', () => {
    const docs = docsOf(MODES.find((m) => m.valuesFile === 'values-otlp.yaml')!);
    const collectorUrl = serviceUrl(docs, 'otel-collector', 'otlp-grpc');
    assert.equal(collectorUrl, `http://perfcatch-otel-collector.${NAMESPACE}.svc:4317`);
    assert.equal(agentEnv(docs).PERFCATCH_OTLP_ENDPOINT, collectorUrl);
    const collector = podSpec(ofComponent(docs, 'Deployment', 'otel-collector'));
    const configName = (collector.volumes as { configMap?: { name: string } }[]).find((v) => v.configMap)!.configMap!.name;
    const config = configFile(docs, configName, 'config.yaml') as {
      exporters: Record<string, { endpoint: string }>;
      service: { pipelines: { traces: { exporters: string[] } } };
    };
    const exporter = config.exporters[config.service.pipelines.traces.exporters[0]!];
    assert.equal(`http://${exporter?.endpoint}`, serviceUrl(docs, 'jaeger', 'otlp-grpc'), 'the collector forwards to Jaeger');
    assert.ok(serviceUrl(docs, 'jaeger', 'query').endsWith(':16686'), 'Jaeger UI on 16686');

    const existing = docsOf(MODES.find((m) => m.valuesFile === 'values-otlp-existing.yaml')!);
    assert.equal(agentEnv(existing).PERFCATCH_OTLP_ENDPOINT, 'http://otel-collector.observability.svc:4317');
  });

  it('issue 13, finding 4: a NetworkPolicy opens only the metrics port; api.expose adds a token Secret, the API port and its rule', () => {
    const byDefault = rendered.get(`mode:${MODES[0]!.name}`)!;
    const policy = only(byDefault, 'NetworkPolicy');
    assert.deepEqual(policy.spec.policyTypes, ['Ingress']);
    assert.deepEqual(policy.spec.ingress, [{ ports: [{ port: 9091, protocol: 'TCP' }] }]);
    assert.equal(ofKind(byDefault, 'Secret').some((d) => d.metadata.name.endsWith('-api-token')), false);
    assert.equal(agentEnv(byDefault).PERFCATCH_API_TOKEN_FILE, undefined);

    const exposed = rendered.get('variant:API exposed behind a token')!;
    const env = agentEnv(exposed);
    assert.equal(env.PERFCATCH_API_HOST, '0.0.0.0');
    const secret = named(exposed, 'Secret', `${RELEASE}-api-token`);
    assert.match(secret.stringData.token, /^[A-Za-z0-9]{40}$/);
    const c = agentContainer(exposed);
    const mount = (c.volumeMounts as { name: string; mountPath: string; readOnly?: boolean }[]).find((m) => m.name === 'api-token')!;
    assert.equal(env.PERFCATCH_API_TOKEN_FILE, `${mount.mountPath}/token`);
    assert.equal(mount.readOnly, true);
    const volume = (podSpec(agentDaemonSet(exposed)).volumes as { name: string; secret?: { secretName: string } }[]).find((v) => v.name === 'api-token');
    assert.equal(volume?.secret?.secretName, secret.metadata.name);
    assert.deepEqual((c.ports as { name: string; containerPort: number }[]).map((p) => [p.name, p.containerPort]), [['http-metrics', 9091], ['http-api', 9090]]);
    assert.deepEqual(only(exposed, 'NetworkPolicy').spec.ingress, [
      { ports: [{ port: 9091, protocol: 'TCP' }], from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }] },
      { ports: [{ port: 9090, protocol: 'TCP' }], from: [{ podSelector: {} }] },
    ]);
  });

  it('issue 14: api.expose adds the Role <release>-query for `perfcatch … --cluster`, bound to no one', () => {
    const exposed = rendered.get('variant:API exposed behind a token')!;
    const role = named(exposed, 'Role', `${RELEASE}-query`);
    assert.deepEqual(role.rules, [
      { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] },
      { apiGroups: [''], resources: ['pods/proxy'], verbs: ['get'] },
      { apiGroups: [''], resources: ['secrets'], resourceNames: [`${RELEASE}-api-token`], verbs: ['get'] },
    ]);
    assert.equal(ofKind(exposed, 'RoleBinding').some((b) => b.roleRef.name === role.metadata.name), false);
    // The labels --cluster finds the agents by.
    const labels = agentDaemonSet(exposed).spec.template.metadata.labels as Record<string, string>;
    assert.equal(labels['app.kubernetes.io/part-of'], 'perfcatch');
    assert.equal(labels['app.kubernetes.io/component'], 'agent');
    assert.equal(ofKind(rendered.get(`mode:${MODES[0]!.name}`)!, 'Role').some((r) => r.metadata.name.endsWith('-query')), false, 'not without api.expose');
  });

  it('turns list values into comma-separated flags and passes extra variables through', () => {
    const docs = rendered.get('variant:lists, extra env and other names')!;
    const env = agentEnv(docs);
    assert.equal(env.PERFCATCH_PORTS, '8080,8443');
    assert.equal(env.PERFCATCH_CORRELATION_HEADERS, 'x-order-id');
    assert.equal(env.PERFCATCH_PODS, 'web-1,web-2');
    assert.equal(env.PERFCATCH_KEEP_QUERY, 'true');
    assert.equal(agentDaemonSet(docs).metadata.name, 'pc');
    assert.equal(podSpec(agentDaemonSet(docs)).serviceAccountName, 'pc-agent');
    assert.equal(serviceOf(docs, 'grafana').metadata.name, 'pc-grafana');
    assert.equal(agentEnv(docs).PERFCATCH_OTLP_ENDPOINT, '');
  });

  it('the bundled collector configuration is accepted by a real OpenTelemetry Collector of the same release', () => {
    const bin = otelcolBinary();
    const configs: [string, string][] = [];
    for (const [key, docs] of rendered) {
      const c = docs.find((d) => d.kind === 'ConfigMap' && component(d) === 'otel-collector');
      if (c) configs.push([key, c.data['config.yaml']]);
    }
    assert.ok(configs.length >= 3, 'the jaeger, forward and debug variants are rendered');
    const exporters = new Set<string>();
    for (const [key, text] of configs) {
      const file = join(work, `otelcol-${configs.findIndex(([k]) => k === key)}.yaml`);
      writeFileSync(file, text);
      const r = spawnSync(bin, ['validate', '--config', file], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${key}: otelcol validate: ${r.stdout}${r.stderr}`);
      exporters.add(Object.keys((embeddedYaml.get(text) as { exporters: object }).exporters).join(','));
    }
    assert.deepEqual([...exporters].sort(), ['debug', 'otlp_grpc/forward', 'otlp_grpc/jaeger']);
  });

  it(`renders the full stack for the announced command: ${INSTALL_COMMAND}`, () => {
    // `helm install --dry-run` still needs a reachable cluster in Helm 3 (helm/helm#13144), so the
    // same arguments go to `helm template`, which takes every install flag.
    const args = INSTALL_COMMAND.split(' ').slice(1);
    assert.equal(args[0], 'install');
    const out = helm(helmBin, ['template', ...args.slice(1), '--kube-version', KUBE_VERSION]);
    const docs = parseYamlStreams([out])[0] as Manifest[];
    assert.deepEqual([...new Set(docs.map(component))].sort(), ['agent', 'grafana', 'prometheus']);
    assert.equal(agentEnv(docs).PERFCATCH_NAMESPACE, 'my-app');
    for (const d of docs) if (!d.kind.startsWith('Cluster')) assert.equal(d.metadata.namespace, 'perfcatch');
    assert.ok(readFileSync(join(CHART_DIR, 'README.md'), 'utf8').includes(INSTALL_COMMAND), 'the chart README shows the command');
  });

  it('NOTES.txt tells how to reach the API and Grafana', () => {
    // helm template does not render NOTES.txt: render it through tpl from a copy of the chart.
    const copy = join(work, 'chart');
    cpSync(CHART_DIR, copy, { recursive: true });
    cpSync(join(CHART_DIR, 'templates/NOTES.txt'), join(copy, 'notes.txt'));
    writeFileSync(
      join(copy, 'templates/zz-notes-probe.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes-probe\ndata:\n  notes: {{ tpl (.Files.Get "notes.txt") . | quote }}\n',
    );
    const notes = (extra: string[]) => {
      const out = helm(helmBin, ['template', RELEASE, copy, '-n', NAMESPACE, '--kube-version', KUBE_VERSION, '--show-only', 'templates/zz-notes-probe.yaml', ...extra]);
      return ((parseYamlStreams([out])[0]![0] as Manifest).data as { notes: string }).notes;
    };
    const full = notes(['--set', 'config.namespace=my-app']);
    assert.match(full, /kubectl -n perfcatch port-forward svc\/perfcatch 9091:9091/);
    assert.match(full, /kubectl -n perfcatch port-forward pod\/<agent-pod> 9090:9090/);
    assert.match(full, /curl 'http:\/\/127\.0\.0\.1:9090\/api\/requests/);
    assert.match(full, /kubectl -n perfcatch port-forward svc\/grafana 3000:3000/);
    assert.match(full, /admin \/ perfcatch/);
    assert.match(full, /namespace my-app/);
    const standalone = notes(['-f', join(copy, 'values-standalone.yaml')]);
    assert.doesNotMatch(standalone, /grafana/i);
    assert.match(standalone, /\/var\/lib\/perfcatch\/perfcatch\.db/);
    const otlp = notes(['-f', join(copy, 'values-otlp.yaml')]);
    assert.match(otlp, /port-forward svc\/perfcatch-jaeger 16686:16686/);
    assert.match(otlp, /http:\/\/perfcatch-otel-collector\.perfcatch\.svc:4317/);
  });

  it('every rendered object validates against the Kubernetes 1.34 schemas (kubernetes-validate --strict)', () => {
    const files: string[] = [];
    let expected = 0;
    for (const docs of rendered.values()) {
      // ServiceMonitor is a prometheus-operator CRD, absent from the Kubernetes schemas; its
      // shape is checked above.
      const core = docs.filter((d) => d.kind !== 'ServiceMonitor');
      expected += core.length;
      const file = join(work, `rendered-${files.length}.yaml`);
      writeFileSync(file, core.map((d) => JSON.stringify(d)).join('\n---\n'));
      files.push(file);
    }
    const r = kubernetesValidate(files);
    const lines = r.output.split('\n').filter((l) => l.trim());
    const bad = lines.filter((l) => !/^INFO .* passed for resource /.test(l));
    assert.deepEqual(bad, [], 'no ERROR or WARN');
    assert.equal(r.status, 0, r.output);
    assert.equal(lines.length, expected, `one pass per rendered object (${expected})`);
    assert.ok(lines.every((l) => l.endsWith('against version 1.34')));
  });
});
