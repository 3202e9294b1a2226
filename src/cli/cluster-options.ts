/**
 * The options of `--cluster` (requests, report, services, detail): one table that gives the
 * flag specs, the --help text and the README's table (test/docs/readme-tables.ts).
 */
import type { FlagSpec, FlagSpecs } from './args.ts';

export const DEFAULT_AGENT_NAMESPACE = 'perfcatch';
export const DEFAULT_CLUSTER_CONCURRENCY = 8;

export interface ClusterOption {
  /** null: read from the environment only. */
  flag: string | null;
  arg?: string;
  spec?: FlagSpec;
  env: string[];
  defaultText: string;
  description: string;
}

export const CLUSTER_OPTIONS: readonly ClusterOption[] = [
  { flag: '--cluster', spec: { kind: 'boolean' }, env: [], defaultText: 'off', description: 'ask every agent pod of the chart and merge the answers' },
  { flag: '--agent-namespace', arg: 'NS', spec: { kind: 'string' }, env: ['PERFCATCH_AGENT_NAMESPACE'], defaultText: DEFAULT_AGENT_NAMESPACE, description: 'namespace of the agent pods' },
  { flag: '--kubeconfig', arg: 'FILE', spec: { kind: 'string' }, env: ['KUBECONFIG'], defaultText: '~/.kube/config', description: 'kubeconfig of the querying user' },
  {
    flag: '--cluster-concurrency', arg: 'N', spec: { kind: 'integer', min: 1, max: 64 }, env: [], defaultText: String(DEFAULT_CLUSTER_CONCURRENCY),
    description: 'agents asked at once (1-64)',
  },
  { flag: null, env: ['PERFCATCH_API_TOKEN'], defaultText: 'read from their Secret', description: "the agents' API token" },
];

export const CLUSTER_FLAGS: FlagSpecs = Object.fromEntries(
  CLUSTER_OPTIONS.flatMap((o) => (o.flag !== null && o.spec ? [[o.flag.slice(2), o.spec]] : [])),
);

export const CLUSTER_USAGE = `
Across a Kubernetes cluster (the chart's agents, through the API server's pod proxy;
agents that fail are listed on stderr and make the exit status 1):
${CLUSTER_OPTIONS.map((o) => {
  const name = o.flag === null ? o.env.join(', ') : `${o.flag}${o.arg ? ` ${o.arg}` : ''}`;
  const env = o.flag !== null && o.env.length > 0 ? `; env ${o.env.join(', ')}` : '';
  return `  ${name.padEnd(24)} ${o.description} (default ${o.defaultText}${env})`;
}).join('\n')}
`;
