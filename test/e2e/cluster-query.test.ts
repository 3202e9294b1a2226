/**
 * `perfcatch requests|report|services|detail --cluster` against a real kube-apiserver: the
 * chart (api.expose=true) is rendered with Helm and its token Secret and query Role applied; its
 * DaemonSet's pod template becomes four agent pods on four nodes:
 * - node-a and node-b: real agents (bound beyond loopback, behind the chart's token) measuring
 *   real servers: `checkout` runs on both nodes, `inventory` on node-b only;
 * - node-c: a pod whose address answers nothing (connection refused);
 * - node-d: a pod still Pending, with no address.
 * The CLI runs as a user bound only to the chart's query Role, finds the pods by the chart's
 * labels and reaches the agents through the API server's pod proxy, at their pod IP (a
 * non-loopback address of this host: the API server refuses to proxy to loopback).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAgent, type RunningAgent } from '../harness/agent.ts';
import { cli, type CliResult } from '../harness/cli.ts';
import { assertOneLineError } from '../harness/one-line-error.ts';
import { CHART_DIR, helm, helmBinary, parseYamlStreams, type Manifest } from '../harness/helm.ts';
import { adminWrite, startKubeApiServer, trustCa, type RunningKubeApiServer } from '../harness/kube-apiserver.ts';
import { freePort, waitFor } from '../harness/ports.ts';
import { getRequest, RawHttpClient } from '../harness/raw-client.ts';
import { startNodeServer, startPythonServer, type RunningServer } from '../harness/runtimes.ts';
import { summarizeServices } from '../../src/store/service-summary.ts';
import type { ClusterServiceSummary } from '../../src/cli/merge-services.ts';
import type { RequestRecord } from '../../src/types.ts';

const NS = 'perfcatch';
const RELEASE = 'perfcatch';
/** Added to lo when this host has no non-loopback IPv4 address of its own. */
const FALLBACK_ADDRESS = '10.254.14.1';

/** A global-unicast IPv4 address of this host, adding FALLBACK_ADDRESS to lo if there is none. */
function podAddress(): { ip: string; remove: () => void } {
  const own = Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal && !a.address.startsWith('169.254.'));
  if (own) return { ip: own.address, remove: () => {} };
  execFileSync('ip', ['addr', 'add', `${FALLBACK_ADDRESS}/32`, 'dev', 'lo']);
  return { ip: FALLBACK_ADDRESS, remove: () => execFileSync('ip', ['addr', 'del', `${FALLBACK_ADDRESS}/32`, 'dev', 'lo']) };
}

describe('one query across the cluster (--cluster)', () => {
  let kube: RunningKubeApiServer;
  let address: { ip: string; remove: () => void };
  let dir: string;
  let token: string;
  const servers: RunningServer[] = [];
  const agents: RunningAgent[] = [];
  /** The query Role's user: KUBECONFIG of `perfcatch … --cluster`. */
  let userEnv: Record<string, string>;

  const kubeApi = (method: 'POST' | 'PATCH', path: string, body: unknown) => adminWrite(kube, method, path, body);

  /** One agent pod from the chart's pod template: on `node`, its http-api port `port`, at `ip` unless Pending. */
  async function createAgentPod(template: Manifest, name: string, node: string, port: number, ip: string | null): Promise<void> {
    const spec = structuredClone(template.spec);
    spec.nodeName = node;
    for (const c of spec.containers) for (const p of c.ports ?? []) if (p.name === 'http-api') p.containerPort = port;
    await kubeApi('POST', `/api/v1/namespaces/${NS}/pods`, { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NS, labels: template.metadata.labels }, spec });
    const status = ip === null ? { phase: 'Pending' } : { phase: 'Running', podIP: ip, podIPs: [{ ip }] };
    await kubeApi('PATCH', `/api/v1/namespaces/${NS}/pods/${name}/status`, { status });
  }

  /** An agent's own answer, asked directly with the token. */
  async function direct<T>(agent: RunningAgent, path: string): Promise<T> {
    const res = await fetch(agent.api + path, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200, path);
    return (await res.json()) as T;
  }

  async function send(server: RunningServer, paths: string[], tag: string): Promise<void> {
    const client = new RawHttpClient(server.port);
    for (const [i, path] of paths.entries()) await client.request(getRequest(path, { 'X-Correlation-ID': `${tag}-${i}` }));
    await client.close();
  }

  before(async () => {
    address = podAddress();
    dir = mkdtempSync(join(tmpdir(), 'perfcatch-cluster-'));
    kube = await startKubeApiServer({ users: [{ name: 'alice' }, { name: 'mallory' }] });
    trustCa(kube.ca);
    const docs = parseYamlStreams([helm(helmBinary(), ['template', RELEASE, CHART_DIR, '-n', NS, '--set', 'api.expose=true'])])[0] as Manifest[];
    const find = (kind: string, name: string) => docs.find((d) => d.kind === kind && d.metadata.name === name) ?? assert.fail(`the chart renders no ${kind} ${name}`);
    const secret = find('Secret', `${RELEASE}-api-token`);
    const role = find('Role', `${RELEASE}-query`);
    const template = find('DaemonSet', RELEASE).spec.template as Manifest;

    await kubeApi('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    await kubeApi('POST', `/api/v1/namespaces/${NS}/secrets`, secret);
    await kubeApi('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/roles`, role);
    await kubeApi('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings`, {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'alice-query', namespace: NS },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'alice' }],
    });
    userEnv = { KUBECONFIG: kube.kubeconfigFor(kube.tokens.alice!), PERFCATCH_API_TOKEN: '' };

    token = secret.stringData.token as string;
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, token, { mode: 0o600 });
    const [checkoutA, checkoutB, inventoryB] = [
      await startNodeServer({ OTEL_SERVICE_NAME: 'checkout' }),
      await startNodeServer({ OTEL_SERVICE_NAME: 'checkout' }),
      await startPythonServer({ OTEL_SERVICE_NAME: 'inventory' }),
    ];
    servers.push(checkoutA, checkoutB, inventoryB);
    // Both agents see every socket of this host: --ports gives each its own node's servers.
    const agentOf = (ports: number[]) => startAgent(['--api-host', '0.0.0.0', '--api-token-file', tokenFile, '--ports', ports.join(',')]);
    agents.push(await agentOf([checkoutA.port]), await agentOf([checkoutB.port, inventoryB.port]));
    const apiPort = (agent: RunningAgent) => Number(new URL(agent.api).port);
    await createAgentPod(template, `${RELEASE}-a1`, 'node-a', apiPort(agents[0]!), address.ip);
    await createAgentPod(template, `${RELEASE}-b2`, 'node-b', apiPort(agents[1]!), address.ip);
    await createAgentPod(template, `${RELEASE}-c3`, 'node-c', await freePort(), address.ip);
    await createAgentPod(template, `${RELEASE}-d4`, 'node-d', 9090, null);

    await send(checkoutA, [1, 2, 3, 4, 5, 6].map((ms) => `/compute?ms=${ms}`), 'a');
    await send(checkoutB, [20, 30, 40].map((ms) => `/compute?ms=${ms}`), 'b');
    await send(inventoryB, ['/stock?status=200', '/stock?status=500'], 'inv');
    for (const [agent, count] of [[agents[0]!, 6], [agents[1]!, 5]] as const) {
      await waitFor(`the agent sees its ${count} requests`, async () => {
        const body = await direct<{ count: number }>(agent, '/api/requests?since=10&limit=100');
        return body.count === count ? true : undefined;
      });
    }
  });

  after(async () => {
    for (const a of agents) await a.stop();
    for (const s of servers) await s.stop();
    await kube?.stop();
    address?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The stderr lines naming the two pods that could not answer, and the exit status they cause. */
  function assertFailuresListed(r: CliResult): void {
    assert.equal(r.code, 1, `agents that failed make the exit status 1; stderr: ${r.stderr}`);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines[0], 'perfcatch: 2 of 4 agent pods did not answer (their nodes are missing from the output):');
    assert.match(lines[1]!, /^perfcatch: {3}perfcatch\/perfcatch-c3 on node node-c: .*answered 503: .*connection refused$/);
    assert.equal(lines[2], 'perfcatch:   perfcatch/perfcatch-d4 on node node-d: the pod is Pending');
    assert.equal(lines.length, 3, r.stderr);
  }

  it('requests: one correlation id found on whichever node served it', async () => {
    const r = await cli(['requests', '--cluster', '--correlation-id', 'b-1', '--since', '10'], userEnv);
    assertFailuresListed(r);
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^TIME +SERVICE +REQUEST +STATUS +DUR MS +CPU MS +ID +POD +CORRELATION$/);
    assert.equal(lines.length, 2, r.stdout);
    assert.match(lines[1]!, /checkout +GET \/compute\?REDACTED +200 .* b-1$/, 'query strings stay redacted');
  });

  it('requests --json: every node\'s newest, sorted and limited as one query would be', async () => {
    const r = await cli(['requests', '--cluster', '--json', '--since', '10', '--limit', '7'], userEnv);
    assertFailuresListed(r);
    const body = JSON.parse(r.stdout) as { count: number; requests: RequestRecord[] };
    const all = [
      ...(await direct<{ requests: RequestRecord[] }>(agents[0]!, '/api/requests?since=10&limit=100')).requests,
      ...(await direct<{ requests: RequestRecord[] }>(agents[1]!, '/api/requests?since=10&limit=100')).requests,
    ].sort((a, b) => b.timestamp - a.timestamp);
    assert.equal(all.length, 11);
    assert.equal(body.count, 7);
    assert.deepEqual(body.requests.map((x) => x.request_id), all.slice(0, 7).map((x) => x.request_id));
  });

  it('report --json: counts add up, and percentiles of a service on two nodes are computed over both nodes\' requests', async () => {
    const r = await cli(['report', '--cluster', '--json', '--since', '10'], userEnv);
    assertFailuresListed(r);
    const services = (JSON.parse(r.stdout) as { services: ClusterServiceSummary[] }).services;
    const both = [
      ...(await direct<{ requests: RequestRecord[] }>(agents[0]!, '/api/requests?since=10&limit=100')).requests,
      ...(await direct<{ requests: RequestRecord[] }>(agents[1]!, '/api/requests?since=10&limit=100')).requests,
    ];
    const expected = summarizeServices(both);
    assert.deepEqual(services.map((s) => [s.service_name, s.count, s.agents, s.percentiles_exact]), [['checkout', 9, 2, true], ['inventory', 2, 1, true]]);
    for (const [i, s] of services.entries()) {
      const { agents: _agents, percentiles_exact: _exact, ...summary } = s;
      assert.deepEqual(summary, expected[i], s.service_name);
    }
    // The merged p50 is neither node's own: node-a's 6 requests and node-b's 3 slower ones.
    const checkout = services[0]!;
    assert.ok(checkout.duration_ms.p95 >= 20, `p95 ${checkout.duration_ms.p95} comes from node-b's requests`);
    assert.equal(services[1]!.errors, 1);
  });

  it('report and services as tables', async () => {
    const report = await cli(['report', '--cluster', '--since', '10'], userEnv);
    assertFailuresListed(report);
    assert.match(report.stdout, /^checkout +9 /m);
    assert.match(report.stdout, /^inventory +2 .* 1 \(50\.0%\)$/m);
    assert.doesNotMatch(report.stdout, /≤/, 'every percentile is exact here');
    const services = await cli(['services', '--cluster', '--since', '10'], userEnv);
    assertFailuresListed(services);
    assert.match(services.stdout, /^checkout +node +9 /m);
    assert.match(services.stdout, /^inventory +python3 +2 /m);
  });

  it('detail: the request is fetched from the node that has it', async () => {
    const [record] = (await direct<{ requests: RequestRecord[] }>(agents[1]!, '/api/requests?correlation_id=inv-1&since=10')).requests;
    assert.ok(record);
    const r = await cli(['detail', '--cluster', '--json', record.request_id], userEnv);
    assertFailuresListed(r);
    assert.deepEqual(JSON.parse(r.stdout), record);
    const missing = await cli(['detail', '--cluster', 'no-such-id'], userEnv);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^perfcatch: no request with id "no-such-id"/);
  });

  it('a user without the query Role is told what is missing, in one line', async () => {
    const r = await cli(['requests', '--cluster'], { KUBECONFIG: kube.kubeconfigFor(kube.tokens.mallory!) });
    assertOneLineError(r, 1, /listing the agent pods in namespace perfcatch: the API server .* answered 403: .*get\/list pods and get pods\/proxy/);
  });

  it('without a kubeconfig: one line saying where it looked', async () => {
    const r = await cli(['report', '--cluster'], { KUBECONFIG: '', HOME: dir, KUBERNETES_SERVICE_HOST: '' });
    assertOneLineError(r, 1, new RegExp(`^perfcatch: --cluster: no kubeconfig \\(no KUBECONFIG, no ${dir}/\\.kube/config, not in a pod\\); set KUBECONFIG or --kubeconfig FILE\\n$`));
  });

  it('the wrong namespace: one line', async () => {
    const r = await cli(['services', '--cluster', '--agent-namespace', 'elsewhere'], { KUBECONFIG: kube.kubeconfigPath });
    assertOneLineError(r, 1, /no agent pods in namespace elsewhere \(labels app\.kubernetes\.io\/part-of=perfcatch,app\.kubernetes\.io\/component=agent\)/);
  });
});
