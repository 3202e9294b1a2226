/**
 * A small flag parser for the query commands (report, detail, services, alerts, top).
 * Accepts `--flag value`, `--flag=value`, boolean `--flag`, `-h`, and `--` to end flags.
 * Every mistake is a UsageError with a one-line message naming the flag.
 */
import { rejectRepeatedFlag } from '../util/repeated-flag.ts';

/** A problem the user can fix; `exitCode` is what the process should exit with. */
export class CliError extends Error {
  override name = 'CliError';
  readonly exitCode: number;

  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}

/** A bad command line: exit code 2. */
export class UsageError extends CliError {
  override name = 'UsageError';

  constructor(message: string) {
    super(message, 2);
  }
}

export type FlagKind = 'string' | 'boolean' | 'number' | 'integer';

export interface FlagSpec {
  kind: FlagKind;
  /** Inclusive bounds for number / integer flags. */
  min?: number;
  max?: number;
  /** `min` itself is not allowed (e.g. a positive number). */
  exclusiveMin?: boolean;
}

export type FlagSpecs = Record<string, FlagSpec>;

export type FlagValue = string | number | boolean;

export interface ParsedArgs {
  /** Keyed by flag name without the leading dashes. */
  flags: Map<string, FlagValue>;
  positionals: string[];
  help: boolean;
}

/**
 * Parses `argv` against `specs` (keys are flag names without dashes, e.g. "since").
 * `maxPositionals` bounds the arguments that are not flags.
 */
export function parseArgs(argv: readonly string[], specs: FlagSpecs, maxPositionals = 0): ParsedArgs {
  const flags = new Map<string, FlagValue>();
  const positionals: string[] = [];
  let help = false;
  let onlyPositionals = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (onlyPositionals || arg === '-' || !arg.startsWith('-')) {
      positionals.push(arg);
      continue;
    }
    if (arg === '--') {
      onlyPositionals = true;
      continue;
    }
    if (arg === '-h' || arg === '--help') {
      help = true;
      continue;
    }
    if (!arg.startsWith('--')) throw new UsageError(`unknown option ${arg}${suggest(specs)}`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const spec = Object.hasOwn(specs, name) ? specs[name] : undefined;
    if (spec === undefined) throw new UsageError(`unknown option --${name}${suggest(specs)}`);
    rejectRepeatedFlag(`--${name}`, flags.has(name), (message) => new UsageError(message));
    if (spec.kind === 'boolean') {
      if (eq !== -1) throw new UsageError(`--${name}: takes no value`);
      flags.set(name, true);
      continue;
    }
    let raw: string;
    if (eq !== -1) {
      raw = arg.slice(eq + 1);
    } else {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2)) throw new UsageError(`--${name}: needs a value`);
      raw = next;
      i++;
    }
    flags.set(name, convert(name, raw, spec));
  }
  if (!help && positionals.length > maxPositionals) {
    throw new UsageError(`unexpected argument ${JSON.stringify(positionals[maxPositionals])}`);
  }
  return { flags, positionals, help };
}

function convert(name: string, raw: string, spec: FlagSpec): FlagValue {
  if (raw === '') throw new UsageError(`--${name}: must not be empty`);
  if (spec.kind === 'string') return raw;
  const pattern = spec.kind === 'integer' ? /^\d{1,15}$/ : /^\d{1,15}(\.\d+)?$/;
  const n = Number(raw);
  const low = spec.min === undefined || (spec.exclusiveMin ? n > spec.min : n >= spec.min);
  const high = spec.max === undefined || n <= spec.max;
  if (!pattern.test(raw) || !Number.isFinite(n) || !low || !high) {
    throw new UsageError(`--${name}: expected ${describe(spec)}, got ${JSON.stringify(raw)}`);
  }
  return n;
}

function describe(spec: FlagSpec): string {
  const what = spec.kind === 'integer' ? 'an integer' : 'a number';
  const parts: string[] = [];
  if (spec.min !== undefined) parts.push(spec.exclusiveMin ? `greater than ${spec.min}` : `at least ${spec.min}`);
  if (spec.max !== undefined) parts.push(`at most ${spec.max}`);
  if (parts.length === 0 && spec.kind === 'number') return 'a non-negative number';
  return parts.length ? `${what} ${parts.join(', ')}` : what;
}

function suggest(specs: FlagSpecs): string {
  const names = Object.keys(specs).map((n) => `--${n}`);
  return `; expected one of ${[...names, '--help'].join(', ')}`;
}

export function stringFlag(args: ParsedArgs, name: string): string | undefined {
  const v = args.flags.get(name);
  return typeof v === 'string' ? v : undefined;
}

export function numberFlag(args: ParsedArgs, name: string): number | undefined {
  const v = args.flags.get(name);
  return typeof v === 'number' ? v : undefined;
}

export function booleanFlag(args: ParsedArgs, name: string): boolean {
  return args.flags.get(name) === true;
}
