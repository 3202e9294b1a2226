/**
 * A real Kubernetes API server (kube-apiserver built by test/peers/build-kube-apiserver.sh,
 * cached) on its own etcd (Debian's etcd-server), for tests that watch pods the way an agent on a
 * node does. There is no kubelet, scheduler or controller manager: pods stay Pending, their
 * status is whatever a test patches into the status subresource, and namespaces get no default
 * service account (so the ServiceAccount admission plugin is off).
 *
 * Everything listens on 127.0.0.1 on free ports picked here, and lives in a temp dir that stop()
 * removes: etcd's data, a test CA and a serving cert for 127.0.0.1/localhost signed by it, the
 * service-account signing key pair, the static token file and a kubeconfig.
 *
 * Auth: a static bearer token (--token-auth-file) for an admin user in system:masters, plus one
 * token per extra user asked for (in no group: RBAC grants them nothing until a test binds a
 * role), with --authorization-mode=Node,RBAC as a real cluster has it.
 */
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import { ROOT } from './agent.ts';
import { freePort, waitFor } from './ports.ts';
import { spawnTracked, type Spawned } from './processes.ts';

export const KUBE_ADMIN_USER = 'perfcatch-admin';

export interface KubeApiServerOptions {
  /** Extra token users (no groups unless given), e.g. the agent's service identity for RBAC tests. */
  users?: { name: string; groups?: string[] }[];
  /** Extra kube-apiserver flags (--name=value), appended last so they win. */
  extraArgs?: string[];
}

export interface RunningKubeApiServer {
  /** https://127.0.0.1:<secure port> */
  url: string;
  /** A kubeconfig for the admin user: token auth, the test CA inline. */
  kubeconfigPath: string;
  /** The admin's bearer token (system:masters). */
  token: string;
  /** Bearer tokens of the extra users, by name. */
  tokens: Record<string, string>;
  /** The test CA (PEM) that signed the serving cert, and its path. */
  ca: string;
  caPath: string;
  etcd: Spawned & { url: string };
  apiserver: Spawned;
  /** Writes a kubeconfig for a bearer token (e.g. one of tokens) and returns its path. */
  kubeconfigFor(token: string, name?: string): string;
  stop(): Promise<void>;
}

export function kubeBinaries(): { apiserver: string; etcd: string } {
  const out = execFileSync('bash', [join(ROOT, 'test/peers/build-kube-apiserver.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [apiserver, etcd] = out.trim().split('\n');
  if (!apiserver || !etcd) throw new Error(`build-kube-apiserver.sh printed ${JSON.stringify(out)}`);
  return { apiserver, etcd };
}

/**
 * Makes this process's fetch() (and every TLS client without its own ca option) trust the test
 * CA as well as the usual roots, so requests to the API server verify its certificate.
 */
export function trustCa(ca: string): void {
  const current = getCACertificates('default');
  if (!current.includes(ca)) setDefaultCACertificates([...current, ca]);
}

/**
 * Creates or changes an object as the admin: POST/PUT with a JSON body, PATCH as a merge patch.
 * Anything but a 2xx throws with the API server's answer. Needs trustCa(kube.ca) first.
 */
export async function adminWrite<T = unknown>(kube: RunningKubeApiServer, method: 'POST' | 'PUT' | 'PATCH', path: string, body: unknown): Promise<T> {
  const res = await fetch(`${kube.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${kube.token}`, 'content-type': method === 'PATCH' ? 'application/merge-patch+json' : 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A test CA and a serving cert for 127.0.0.1 and localhost that it signed, both P-256. */
function makeCerts(dir: string): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '7'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=perfcatch-test-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  openssl(['req', '-x509', '-CA', 'ca.crt', '-CAkey', 'ca.key', ...ec, '-keyout', 'apiserver.key', '-out', 'apiserver.crt',
    '-subj', '/CN=kube-apiserver', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'keyUsage=critical,digitalSignature',
    '-addext', 'extendedKeyUsage=serverAuth'], dir);
}

/** GET with the token over TLS verified against the CA; resolves with the status and body. */
function get(url: string, token: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, headers: { authorization: `Bearer ${token}` }, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

function kubeconfig(url: string, ca: string, token: string, user: string): string {
  // JSON is YAML, and needs no quoting rules of its own.
  return JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'perfcatch-test', cluster: { server: url, 'certificate-authority-data': Buffer.from(ca).toString('base64') } }],
      users: [{ name: user, user: { token } }],
      contexts: [{ name: 'perfcatch-test', context: { cluster: 'perfcatch-test', user, namespace: 'default' } }],
      'current-context': 'perfcatch-test',
    },
    null,
    2,
  );
}

export async function startKubeApiServer(opts: KubeApiServerOptions = {}): Promise<RunningKubeApiServer> {
  const bins = kubeBinaries();
  const dir = mkdtempSync(join(tmpdir(), 'perfcatch-kube-'));
  const started: Spawned[] = [];
  const stopAll = async (): Promise<void> => {
    for (const s of [...started].reverse()) await s.stop();
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    // etcd: one member, client and peer URLs on free loopback ports, its own data dir.
    const [clientPort, peerPort] = [await freePort(), await freePort()];
    const etcdUrl = `http://127.0.0.1:${clientPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    const etcd = spawnTracked(bins.etcd, [
      '--name=perfcatch-test',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=perfcatch-test=${peerUrl}`,
      '--initial-cluster-state=new',
      '--logger=zap',
      '--log-level=warn',
    ]);
    started.push(etcd);
    await waitFor(
      'etcd /health',
      async () => {
        if (etcd.child.exitCode !== null) throw new Error(`etcd exited ${etcd.child.exitCode}: ${etcd.output()}`);
        const res = await fetch(`${etcdUrl}/health`).catch(() => null);
        if (res?.status !== 200) return undefined;
        return ((await res.json()) as { health?: string }).health === 'true' ? true : undefined;
      },
      30_000,
    );

    makeCerts(dir);
    const ca = readFileSync(join(dir, 'ca.crt'), 'utf8');
    const sa = generateKeyPairSync('ec', {
      namedCurve: 'prime256v1',
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    writeFileSync(join(dir, 'sa.pub'), sa.publicKey);
    writeFileSync(join(dir, 'sa.key'), sa.privateKey, { mode: 0o600 });

    // Static tokens: token,user,uid,"group1,group2"
    const token = randomBytes(24).toString('hex');
    const tokens: Record<string, string> = {};
    const rows = [`${token},${KUBE_ADMIN_USER},${randomUUID()},"system:masters"`];
    for (const u of opts.users ?? []) {
      tokens[u.name] = randomBytes(24).toString('hex');
      rows.push(`${tokens[u.name]},${u.name},${randomUUID()}${u.groups?.length ? `,"${u.groups.join(',')}"` : ''}`);
    }
    writeFileSync(join(dir, 'tokens.csv'), rows.join('\n') + '\n', { mode: 0o600 });

    const port = await freePort();
    const url = `https://127.0.0.1:${port}`;
    mkdirSync(join(dir, 'certs'));
    const apiserver = spawnTracked(bins.apiserver, [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${port}`,
      `--cert-dir=${join(dir, 'certs')}`,
      `--tls-cert-file=${join(dir, 'apiserver.crt')}`,
      `--tls-private-key-file=${join(dir, 'apiserver.key')}`,
      `--token-auth-file=${join(dir, 'tokens.csv')}`,
      '--authorization-mode=Node,RBAC',
      '--anonymous-auth=false',
      '--service-cluster-ip-range=10.96.0.0/12',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
      // No controller manager creates the default service account that this plugin requires.
      '--disable-admission-plugins=ServiceAccount',
      // A DaemonSet like the agent's (privileged, hostPID) must pass validation.
      '--allow-privileged=true',
      '--profiling=false',
      '--v=1',
      ...(opts.extraArgs ?? []),
    ]);
    started.push(apiserver);
    await waitFor(
      'kube-apiserver /readyz',
      async () => {
        if (apiserver.child.exitCode !== null) throw new Error(`kube-apiserver exited ${apiserver.child.exitCode}: ${apiserver.output().slice(-4000)}`);
        const res = await get(`${url}/readyz`, token, ca).catch(() => null);
        return res?.status === 200 ? true : undefined;
      },
      120_000,
      250,
    ).catch(async (err: unknown) => {
      const readyz = await get(`${url}/readyz?verbose`, token, ca).catch((e: unknown) => ({ status: 0, body: String(e) }));
      throw new Error(`${String(err)}\n/readyz?verbose: ${readyz.status} ${readyz.body}\n${apiserver.output().slice(-4000)}`);
    });

    const kubeconfigFor = (tok: string, name = tok === token ? 'kubeconfig' : `kubeconfig-${tok.slice(0, 8)}`): string => {
      const user = tok === token ? KUBE_ADMIN_USER : (Object.entries(tokens).find(([, t]) => t === tok)?.[0] ?? 'user');
      const path = join(dir, name);
      writeFileSync(path, kubeconfig(url, ca, tok, user), { mode: 0o600 });
      return path;
    };

    return {
      url,
      kubeconfigPath: kubeconfigFor(token),
      token,
      tokens,
      ca,
      caPath: join(dir, 'ca.crt'),
      etcd: { ...etcd, url: etcdUrl },
      apiserver,
      kubeconfigFor,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
