/**
 * One rule for a flag given twice, in both parsers: `perfcatch agent` (src/config.ts) and the
 * query commands (src/cli/args.ts). Either value could be the one meant, so neither is taken.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseArgs, UsageError } from '../../src/cli/args.ts';
import { ConfigError, parseAgentArgs } from '../../src/config.ts';

describe('a repeated flag', () => {
  describe('perfcatch agent', () => {
    const cases: [argv: string[], flag: string][] = [
      [['--api-port', '1', '--api-port', '2'], '--api-port'],
      [['--api-port=1', '--api-port', '1'], '--api-port'], // even with the same value
      [['--keep-query', '--keep-query'], '--keep-query'],
      [['--sched-idle', '--sched-idle=false'], '--sched-idle'],
      [['--ports', '80', '--buffer-size', '5', '--ports', '443'], '--ports'], // lists are comma-separated
    ];
    for (const [argv, flag] of cases) {
      it(`rejects ${JSON.stringify(argv)}`, () => {
        assert.throws(
          () => parseAgentArgs(argv, {}),
          (err: unknown) => err instanceof ConfigError && err.message === `${flag}: given more than once`,
        );
      });
    }

    it('is not a flag that also has its variable set: the flag wins', () => {
      assert.equal(parseAgentArgs(['--api-port', '2'], { PERFCATCH_API_PORT: '1' }).apiPort, 2);
    });

    it('leaves --help alone', () => {
      assert.equal(parseAgentArgs(['--help', '--api-port', '1', '--api-port', '2'], {}).help, true);
    });
  });

  describe('query commands', () => {
    const specs = { since: { kind: 'number' as const }, process: { kind: 'string' as const }, json: { kind: 'boolean' as const } };
    const cases: [argv: string[], flag: string][] = [
      [['--process', 'a', '--process', 'b'], '--process'],
      [['--since=5', '--since', '5'], '--since'], // even with the same value
      [['--json', '--json'], '--json'],
    ];
    for (const [argv, flag] of cases) {
      it(`rejects ${JSON.stringify(argv)}`, () => {
        assert.throws(
          () => parseArgs(argv, specs),
          (err: unknown) => err instanceof UsageError && err.exitCode === 2 && err.message === `${flag}: given more than once`,
        );
      });
    }

    it('allows -h and --help together', () => {
      assert.equal(parseArgs(['-h', '--help'], specs).help, true);
    });
  });
});
