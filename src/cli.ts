#!/usr/bin/env node
/**
 * `perfcatch` command line. Errors a user can fix print one line and exit non-zero; they
 * never print a stack trace.
 */
import { Agent } from './agent.ts';
import { AGENT_USAGE, ConfigError, parseAgentArgs } from './config.ts';
import { LoaderStartError } from './loader/loader-process.ts';
import { createLogger } from './log.ts';
import { StoreError } from './store/sqlite-store.ts';
import { COMMANDS, COMMANDS_USAGE, runCommand } from './cli/commands.ts';

const USAGE = `usage: perfcatch <command> [options]

commands:
  agent     capture per-request cost with eBPF and serve it (see: perfcatch agent --help)
${COMMANDS_USAGE}
`;

function fail(message: string, code: number): never {
  process.stderr.write(`perfcatch: ${message}\n`);
  process.exit(code);
}

async function runAgent(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(AGENT_USAGE);
    return;
  }
  let config;
  try {
    config = parseAgentArgs(argv, process.env);
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message, 2);
    throw err;
  }
  const log = createLogger(config.logLevel);
  let agent: Agent;
  try {
    agent = new Agent(config, log, process.env);
  } catch (err) {
    if (err instanceof StoreError) fail(err.message, 1);
    throw err;
  }
  try {
    await agent.start();
  } catch (err) {
    if (err instanceof LoaderStartError) fail(err.message, err.exitCode || 1);
    if (err instanceof Error) fail(err.message, 1);
    throw err;
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`${signal}: stopping`);
    agent.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  switch (command) {
    case 'agent':
      return runAgent(rest);
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(USAGE);
      return;
    default:
      if (COMMANDS.includes(command)) {
        process.exitCode = await runCommand(command, rest, { stdout: process.stdout, stderr: process.stderr, env: process.env });
        return;
      }
      fail(`unknown command "${command}" (try: perfcatch --help)`, 2);
  }
}

main().catch((err: unknown) => fail(err instanceof Error ? err.message : String(err), 1));
