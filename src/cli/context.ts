/** What every query command gets: parsed flags, output streams, colour, and its source. */
import { MAX_SINCE_MINUTES } from '../api/query-params.ts';
import type { FlagSpec, FlagSpecs, ParsedArgs } from './args.ts';
import type { Paint } from './format.ts';
import type { RequestSource } from './sources.ts';

export interface CliIo {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream;
  env: Record<string, string | undefined>;
  /** Stops a live view (`top` on a terminal); without it, SIGINT/SIGTERM do. */
  signal?: AbortSignal;
}

export interface CommandContext {
  args: ParsedArgs;
  io: CliIo;
  paint: Paint;
  json: boolean;
  /** Opens the source chosen by --api / --db / the environment (once; closed by the caller). */
  source(): Promise<RequestSource>;
  /** Seconds since the epoch. */
  now(): number;
  write(text: string): void;
}

export interface Command {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Full --help text, without the common options (appended by runCommand). */
  usage: string;
  flags: FlagSpecs;
  /** How many positional arguments it takes. */
  positionals: number;
  run(ctx: CommandContext): Promise<number>;
}

export const SINCE_FLAG: FlagSpec = { kind: 'number', min: 0, exclusiveMin: true, max: MAX_SINCE_MINUTES };
export const PROCESS_FLAG: FlagSpec = { kind: 'string' };

