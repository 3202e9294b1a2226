/**
 * Helm chart tooling for tests, no cluster needed: a pinned Helm 3 (built by
 * test/peers/build-helm.sh, cached), PyYAML to read rendered manifests, and kubernetes-validate
 * (PyPI, pinned) to check them offline against the Kubernetes JSON schemas.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './agent.ts';

export const CHART_DIR = join(ROOT, 'charts/perfcatch');
/** Kubernetes version the chart is rendered for and validated against. */
export const KUBE_VERSION = '1.34.0';
/** kubernetes-validate release (it ships the schemas of 1.34 through 1.37). */
export const KUBERNETES_VALIDATE_VERSION = '1.37.0';

export function helmBinary(): string {
  return execFileSync('bash', [join(ROOT, 'test/peers/build-helm.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

/** Runs helm; throws with its output when it exits non-zero. */
export function helm(bin: string, args: string[], cwd = ROOT): string {
  const r = spawnSync(bin, args, { cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`helm ${args.join(' ')} exited ${r.status}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** A rendered Kubernetes object, loosely typed: tests walk it with their own assertions. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: any;
}

function python(script: string, args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('python3', ['-c', script, ...args], { encoding: 'utf8', input, maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Installs the pinned kubernetes-validate with pip unless that exact version is importable. */
export function ensureKubernetesValidate(): void {
  const probe = python('import kubernetes_validate.version as v; print(v.__version__)', []);
  if (probe.status === 0 && probe.stdout.trim() === KUBERNETES_VALIDATE_VERSION) return;
  process.stderr.write(`installing kubernetes-validate==${KUBERNETES_VALIDATE_VERSION} with pip\n`);
  execFileSync('python3', ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', `kubernetes-validate==${KUBERNETES_VALIDATE_VERSION}`], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
}

/**
 * Parses YAML streams (PyYAML, a dependency of kubernetes-validate) in one Python process:
 * one array of non-empty documents per input text.
 */
export function parseYamlStreams(texts: string[]): unknown[][] {
  const script = [
    'import json, sys, yaml',
    'texts = json.load(sys.stdin)',
    'json.dump([[d for d in yaml.safe_load_all(t) if d is not None] for t in texts], sys.stdout)',
  ].join('\n');
  const r = python(script, [], JSON.stringify(texts));
  if (r.status !== 0) throw new Error(`YAML parse failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as unknown[][];
}

/**
 * Validates YAML files (multi-document) against the Kubernetes schemas of `kubeVersion`, strictly
 * (unknown fields are errors), in one process. It prints one line per document: `INFO ... passed`,
 * `ERROR ...`, or `WARN ...` for a kind it has no schema for (which still exits 0, so callers
 * should count the INFO lines).
 */
export function kubernetesValidate(files: string[], kubeVersion = KUBE_VERSION): { status: number | null; output: string } {
  const r = spawnSync('python3', ['-m', 'kubernetes_validate', '--kubernetes-version', kubeVersion, '--strict', ...files], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  return { status: r.status, output: r.stdout + r.stderr };
}
