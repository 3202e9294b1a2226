/**
 * Attribute names defined by @opentelemetry/semantic-conventions: the values of every ATTR_*
 * constant of the stable and the incubating entry points. A name PerfCatch exports must be one
 * of them or sit under its own `perfcatch.` namespace.
 */
import * as stable from '@opentelemetry/semantic-conventions';
import * as incubating from '@opentelemetry/semantic-conventions/incubating';

const CONVENTION_NAMES: ReadonlySet<string> = new Set(
  [stable, incubating].flatMap((m) => Object.entries(m).filter(([k, v]) => k.startsWith('ATTR_') && typeof v === 'string').map(([, v]) => v as string)),
);

export const PERFCATCH_NAMESPACE = 'perfcatch.';

/** Names that are neither a semantic-convention attribute nor under perfcatch. */
export function nonConventionNames(names: Iterable<string>): string[] {
  return [...new Set(names)].filter((n) => !CONVENTION_NAMES.has(n) && !n.startsWith(PERFCATCH_NAMESPACE)).sort();
}

