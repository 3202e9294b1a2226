/**
 * Prints each failed test of a TAP file (node --test --test-reporter=tap) with its error,
 * so the end of a long run (after the kernel matrix) still says what failed and why.
 * Usage: node test/failure-digest.ts <file.tap>
 */
import { existsSync, readFileSync } from 'node:fs';

const MAX_LINES_PER_FAILURE = 40;

function digest(tap: string): string[] {
  const lines = tap.split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)not ok \d+ - (.*)$/.exec(lines[i]!);
    // A `# TODO` test reports a known gap; it does not fail the run.
    if (!m || /# TODO\b/.test(m[2]!)) continue;
    const indent = m[1]!.length;
    // A parent suite fails because a child failed: its own block says only that.
    const block: string[] = [];
    for (let j = i + 1; j < lines.length; j++) {
      const line = lines[j]!;
      if (/^\s*\.\.\.\s*$/.test(line) && line.indexOf('...') === indent + 2) break;
      block.push(line.slice(indent + 2));
    }
    if (block.some((l) => /failureType: 'subtestsFailed'/.test(l))) continue;
    out.push(`✖ ${m[2]}`);
    out.push(...block.filter((l) => l.trim() !== '---').slice(0, MAX_LINES_PER_FAILURE).map((l) => `    ${l}`));
  }
  return out;
}

const file = process.argv[2];
if (!file || !existsSync(file)) {
  console.error(`usage: node test/failure-digest.ts <file.tap> (no file at ${file ?? '(none)'})`);
  process.exit(2);
}
const failures = digest(readFileSync(file, 'utf8'));
if (failures.length === 0) console.log('failed tests: none');
else console.log(`failed tests (from ${file}):\n${failures.join('\n')}`);
