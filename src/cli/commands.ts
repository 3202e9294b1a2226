/**
 * The query commands of `perfcatch` (report, detail, services, alerts, top): dispatch, the
 * common options, --help, and the one-line error contract (2 = usage, 1 = anything else).
 */
import { escapeControls } from '../http/safe-text.ts';
import { ALERTS } from './alerts.ts';
import { CliError, parseArgs, stringFlag, booleanFlag, numberFlag, UsageError, type FlagSpecs, type ParsedArgs } from './args.ts';
import { CLUSTER_FLAGS, DEFAULT_AGENT_NAMESPACE, DEFAULT_CLUSTER_CONCURRENCY } from './cluster-options.ts';
import { ClusterSource } from './cluster-source.ts';
import type { CliIo, Command, CommandContext } from './context.ts';
import { DETAIL } from './detail.ts';
import { colorEnabled, painter } from './format.ts';
import { REPORT } from './report.ts';
import { SERVICES } from './services.ts';
import { REQUESTS } from './requests.ts';
import { DEFAULT_API, escapingSource, openSource, type RequestSource } from './sources.ts';
import { TOP } from './top.ts';

export type { CliIo } from './context.ts';

const ALL: readonly Command[] = [REQUESTS, REPORT, DETAIL, SERVICES, ALERTS, TOP];

export const COMMANDS: string[] = ALL.map((c) => c.name);

/** Lines for the top-level `perfcatch --help` command list (one per command, indented). */
export const COMMANDS_USAGE = ALL.map((c) => `  ${c.name.padEnd(9)} ${c.summary}`).join('\n') + '\n';

const COMMON_FLAGS: FlagSpecs = {
  api: { kind: 'string' },
  db: { kind: 'string' },
  json: { kind: 'boolean' },
};

export const COMMON_USAGE = `
Source (one of; default: the agent API at ${DEFAULT_API}):
  --api URL    the live agent's HTTP API (env PERFCATCH_API)
  --db FILE    the agent's SQLite database, opened read-only (env PERFCATCH_DB_PATH)
Output:
  --json       machine-readable JSON instead of a table
  -h, --help   show this help
Colour is used only on a terminal, and never when NO_COLOR is set.
Exit status: 0 ok, 1 error (or alerts found), 2 bad command line.
`;

/** Full usage of the query commands, for `perfcatch help`. */
export const USAGE = `usage: perfcatch <command> [options]

commands:
${COMMANDS_USAGE}${COMMON_USAGE}`;

/** The --help text of one command. */
export function commandUsage(name: string): string | undefined {
  const c = ALL.find((x) => x.name === name);
  return c ? c.usage + COMMON_USAGE : undefined;
}

/**
 * Runs `perfcatch <name> ...argv`; returns the exit code. Never throws for a user error:
 * it prints one line `perfcatch: …` on stderr instead.
 */
export async function runCommand(name: string, argv: string[], io: CliIo): Promise<number> {
  const command = ALL.find((c) => c.name === name);
  if (command === undefined) {
    io.stderr.write(`perfcatch: unknown command ${JSON.stringify(name)}; expected one of ${COMMANDS.join(', ')}\n`);
    return 2;
  }
  let source: RequestSource | undefined;
  let cluster: ClusterSource | undefined;
  let code: number;
  try {
    const args = parseArgs(argv, { ...command.flags, ...COMMON_FLAGS }, command.positionals);
    if (args.help) {
      io.stdout.write(command.usage + COMMON_USAGE);
      return 0;
    }
    const ctx: CommandContext = {
      args,
      io,
      paint: painter(colorEnabled(io.stdout, io.env)),
      json: booleanFlag(args, 'json'),
      source: async () => {
        if (source !== undefined) return source;
        if (!booleanFlag(args, 'cluster')) return (source = await openSource({ api: stringFlag(args, 'api'), db: stringFlag(args, 'db') }, io.env));
        cluster = await ClusterSource.open(clusterOptions(args, io.env), io.env);
        return (source = escapingSource(cluster));
      },
      now: () => Date.now() / 1000,
      write: (text) => void io.stdout.write(text),
    };
    checkClusterFlags(args);
    code = await command.run(ctx);
  } catch (err) {
    code = err instanceof CliError ? err.exitCode : 1;
    const message = err instanceof Error ? err.message : String(err);
    // The message may quote what the agent answered: no control character reaches the terminal.
    io.stderr.write(`perfcatch: ${oneLine(message)}\n`);
  } finally {
    source?.close();
  }
  return cluster !== undefined && listFailures(cluster, io.stderr) ? Math.max(code, 1) : code;
}

function oneLine(message: string): string {
  return escapeControls(message.replace(/\s*\n\s*/g, ' ').trim());
}

/** --cluster excludes --api and --db; its companions need it. */
function checkClusterFlags(args: ParsedArgs): void {
  if (booleanFlag(args, 'cluster')) {
    for (const flag of ['api', 'db']) if (args.flags.has(flag)) throw new UsageError(`--cluster and --${flag}: give one, not both`);
    return;
  }
  for (const flag of Object.keys(CLUSTER_FLAGS)) if (args.flags.has(flag)) throw new UsageError(`--${flag}: only with --cluster`);
}

function clusterOptions(args: ParsedArgs, env: Record<string, string | undefined>) {
  return {
    namespace: stringFlag(args, 'agent-namespace') ?? (env.PERFCATCH_AGENT_NAMESPACE || DEFAULT_AGENT_NAMESPACE),
    kubeconfig: stringFlag(args, 'kubeconfig'),
    concurrency: numberFlag(args, 'cluster-concurrency') ?? DEFAULT_CLUSTER_CONCURRENCY,
  };
}

/** One stderr line per agent pod that could not be asked or did not answer; true if any. */
function listFailures(cluster: ClusterSource, stderr: NodeJS.WritableStream): boolean {
  const failures = cluster.failures();
  if (failures.length === 0) return false;
  stderr.write(`perfcatch: ${failures.length} of ${cluster.podCount()} agent pods did not answer (their nodes are missing from the output):\n`);
  for (const f of failures) stderr.write(`perfcatch:   ${oneLine(f.pod)} on node ${oneLine(f.node ?? '?')}: ${oneLine(f.reason)}\n`);
  return true;
}
