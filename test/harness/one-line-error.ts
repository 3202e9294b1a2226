/** The CLI's error contract, for every test that runs it: one line on stderr and no output. */
import assert from 'node:assert/strict';

/** How a run of the CLI ended (a child process, or runCommand in the test's own process). */
export interface CliOutcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Exit `code`, nothing on stdout, and on stderr exactly one line, "perfcatch: why", that
 * matches `pattern`: no stack trace, no second line.
 */
export function assertOneLineError(r: CliOutcome, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, `exit code (stderr: ${r.stderr})`);
  assert.match(r.stderr, /^perfcatch: [^\n]+\n$/, `exactly one line on stderr, got: ${r.stderr}`);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
  assert.equal(r.stdout, '', 'nothing on stdout');
}
