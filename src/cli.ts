#!/usr/bin/env -S node --max-old-space-size=160 --max-semi-space-size=2
/**
 * `perfcatch` command line. Errors a user can fix print one line and exit non-zero; they
 * never print a stack trace.
 */
import { spawnSync } from 'node:child_process';
import { setPriority } from 'node:os';
import { getHeapStatistics } from 'node:v8';
import { Agent } from './agent.ts';
import { adaptHeapGrowth } from './heap-growth.ts';
import { AGENT_USAGE, ConfigError, parseAgentArgs } from './config.ts';
import { LoaderStartError } from './loader/loader-process.ts';
import { createLogger } from './log.ts';
import { StoreError } from './store/sqlite-errors.ts';
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

/**
 * The agent runs with a bounded V8 heap (see the shebang and `npm start`) so that its RSS
 * follows what it holds, not what it once allocated. A large --buffer-size needs more.
 */
function warnIfHeapTooSmall(bufferSize: number, log: { warn(m: string): void }): void {
  const neededMb = 64 + Math.ceil((bufferSize * 2048) / 2 ** 20);
  const limitMb = Math.floor(getHeapStatistics().heap_size_limit / 2 ** 20);
  if (neededMb > limitMb) {
    log.warn(`--buffer-size ${bufferSize} may need a ${neededMb} MB heap (limit ${limitMb} MB): set NODE_OPTIONS=--max-old-space-size=${neededMb}`);
  }
}

async function runAgent(argv: string[]): Promise<void> {
  let config;
  try {
    config = parseAgentArgs(argv, process.env);
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message, 2);
    throw err;
  }
  // parseAgentArgs looks for --help before anything else, so a bad flag or variable beside
  // it cannot hide the usage text.
  if (config.help) {
    process.stdout.write(AGENT_USAGE);
    return;
  }
  const log = createLogger(config.logLevel);
  warnIfHeapTooSmall(config.bufferSize, log);
  adaptHeapGrowth((percent, rssMb) => log.debug(`heap growth ${percent}% (RSS ${rssMb.toFixed(0)} MB)`));
  lowerPriority(config.nice, config.schedIdle, log);
  let agent: Agent;
  try {
    agent = new Agent(config, log, process.env);
  } catch (err) {
    if (err instanceof StoreError) fail(err.message, 1);
    if (err instanceof ConfigError) fail(err.message, 2);
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

/**
 * Applications first: SCHED_IDLE for every thread of the agent (V8's GC helpers included), so
 * it only runs on CPU time no other task wants, else nice. The loader, started later, inherits
 * it. Lowering one's own priority needs no privilege; chrt is util-linux's, on every Debian.
 */
function lowerPriority(nice: number, schedIdle: boolean, log: ReturnType<typeof createLogger>): void {
  try {
    setPriority(nice);
  } catch (err) {
    log.warn(`cannot set nice ${nice}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!schedIdle) return;
  const r = spawnSync('chrt', ['--idle', '--all-tasks', '--pid', '0', String(process.pid)], { encoding: 'utf8' });
  if (r.status !== 0) log.warn(`cannot switch to SCHED_IDLE (${(r.error?.message ?? r.stderr).trim()}): running at nice ${nice}`);
}
