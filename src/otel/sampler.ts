/**
 * OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG, applied to the export only: every request is
 * measured, stored and counted in the metrics whatever the decision; a sampled-out span is
 * simply not encoded nor sent, and counted (perfcatch_spans_sampled_out_total).
 *
 * traceidratio follows the Go and Java SDKs: the trace is kept when the lower 64 bits of its
 * id are below ratio * 2^64, so every service of a trace that samples at the same ratio keeps
 * or drops it together.
 */
import { fail, type RawValue } from '../config-error.ts';
import { BoundedMap } from '../util/bounded-map.ts';

export const SAMPLER_NAMES = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;
export type SamplerName = (typeof SAMPLER_NAMES)[number];

export interface SamplerSettings {
  name: SamplerName;
  /** The traceidratio samplers' ratio (1 for the others). */
  ratio: number;
}

/**
 * Unset means always_on, not the SDKs' parentbased_always_on: PerfCatch measured the request,
 * so by default it exports it even under a traceparent whose sampled flag is 00 (documented).
 */
export const DEFAULT_SAMPLER: SamplerSettings = { name: 'always_on', ratio: 1 };

export function parseSamplerSettings(env: Record<string, string | undefined>): SamplerSettings {
  const nameText = env.OTEL_TRACES_SAMPLER?.trim();
  if (!nameText) return DEFAULT_SAMPLER;
  const nameRaw: RawValue = { source: 'OTEL_TRACES_SAMPLER', text: nameText };
  const name = SAMPLER_NAMES.find((n) => n === nameText.toLowerCase()) ?? fail(nameRaw, `one of ${SAMPLER_NAMES.join(', ')}`);
  if (!name.endsWith('traceidratio')) return { name, ratio: 1 };
  const argText = env.OTEL_TRACES_SAMPLER_ARG?.trim();
  if (!argText) return { name, ratio: 1 };
  const ratio = /^(\d+(\.\d*)?|\.\d+)$/.test(argText) ? Number(argText) : NaN;
  if (!(ratio >= 0 && ratio <= 1)) fail({ source: 'OTEL_TRACES_SAMPLER_ARG', text: argText }, 'a ratio from 0 to 1');
  return { name, ratio };
}

/** What the sampler knows of a SERVER span's parent. */
export type ParentContext =
  | { kind: 'none' }
  /** An incoming traceparent, with its sampled flag. */
  | { kind: 'remote'; sampled: boolean }
  /** The caller's CLIENT span on this host (linked by the kernel). */
  | { kind: 'local' };

/** Decisions made from a remote parent's flag, for the request's CLIENT spans that come later. */
const REMEMBERED_DECISIONS = 16_384;

export class TraceSampler {
  readonly settings: SamplerSettings;
  readonly #parentBased: boolean;
  readonly #root: (traceId: string) => boolean;
  /** Request span id -> decision, when it differed from the root sampler's for its trace. */
  readonly #overrides = new BoundedMap<string, boolean>(REMEMBERED_DECISIONS);

  constructor(settings: SamplerSettings) {
    this.settings = settings;
    this.#parentBased = settings.name.startsWith('parentbased_');
    const base = this.#parentBased ? settings.name.slice('parentbased_'.length) : settings.name;
    this.#root =
      base === 'always_on' ? () => true
      : base === 'always_off' ? () => false
      : (traceId) => traceIdBelowRatio(traceId, settings.ratio);
  }

  /** Whether a SERVER span is exported. */
  sampleRequest(spanId: string, traceId: string, parent: ParentContext): boolean {
    // A local parent was itself decided on this trace id by the same root sampler.
    if (!this.#parentBased || parent.kind !== 'remote') return this.#root(traceId);
    if (parent.sampled !== this.#root(traceId)) this.#overrides.set(spanId, parent.sampled);
    return parent.sampled;
  }

  /** Whether a CLIENT span is exported: as its request's SERVER span was. */
  sampleClient(requestSpanId: string, traceId: string): boolean {
    return this.#overrides.get(requestSpanId) ?? this.#root(traceId);
  }
}

/**
 * The Go SDK's rule, exactly: the lower 64 bits of the 32-hex-digit trace id, shifted right
 * once, below ratio * 2^63. (In BigInt: doubles lose the low bits at the boundary.)
 */
export function traceIdBelowRatio(traceId: string, ratio: number): boolean {
  if (ratio >= 1) return true;
  if (ratio <= 0) return false;
  return BigInt(`0x${traceId.slice(16, 32)}`) >> 1n < BigInt(Math.floor(ratio * 2 ** 63));
}
