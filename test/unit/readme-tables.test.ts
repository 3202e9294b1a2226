/** The README's flag and OpenTelemetry-environment tables are the ones the agent reads. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { README, renderReadme } from '../docs/readme-tables.ts';

describe('README tables', () => {
  it('match src/config.ts, src/otel/otlp-env.ts and src/cli/cluster-options.ts (run node test/docs/readme-tables.ts --write)', () => {
    const readme = readFileSync(README, 'utf8');
    assert.equal(renderReadme(readme), readme);
  });
});
