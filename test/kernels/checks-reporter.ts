/**
 * A node:test reporter that writes one JSON line per finished test (name, nesting, pass or
 * fail, duration, the first lines of the error), so the matrix runner can read each check's
 * outcome from a file the VM leaves behind (the guest's stdout does not reach the host).
 */
import type { TestEvent } from 'node:test/reporters';

export interface CheckLine {
  name: string;
  nesting: number;
  ok: boolean;
  skipped: boolean;
  durationMs: number;
  error?: string;
}

function errorText(err: unknown): string {
  const e = err as { cause?: unknown; message?: string } | undefined;
  const inner = (e?.cause ?? e) as { message?: string } | undefined;
  return String(inner?.message ?? e?.message ?? err).split('\n').slice(0, 6).join('\n');
}

export default async function* checksReporter(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const d = event.data;
    const line: CheckLine = {
      name: d.name,
      nesting: d.nesting,
      ok: event.type === 'test:pass',
      skipped: Boolean(d.skip),
      durationMs: Math.round(d.details.duration_ms),
    };
    if (event.type === 'test:fail') line.error = errorText(event.data.details.error);
    yield JSON.stringify(line) + '\n';
  }
}
