/** Validation of /api/requests query parameters into a RequestQuery. */
import { DEFAULT_SINCE_MINUTES, type RequestQuery } from '../store/request-reader.ts';
import { compileLinearRegex, LinearRegexError } from './linear-regex.ts';

export const MAX_SINCE_MINUTES = 10_080; // one week
export const MAX_LIMIT = 10_000;

/** A bad query parameter; the API answers 400 naming `parameter`. */
export class QueryParamError extends Error {
  override name = 'QueryParamError';
  readonly parameter: string;

  constructor(parameter: string, message: string) {
    super(message);
    this.parameter = parameter;
  }
}

const DECIMAL = /^\d+(\.\d+)?$/;
const INTEGER = /^\d{1,6}$/;

type ParamParser = (value: string, name: string) => Partial<RequestQuery>;

const PARSERS: Record<string, ParamParser> = {
  process: (v) => ({ process: v }),
  namespace: (v) => ({ namespace: v }),
  pod: (v) => ({ pod: v }),
  correlation_id: (v) => ({ correlation_id: v }),
  correlation_id_regex: (v, name) => {
    // Bounded: the pattern runs against every stored record.
    if (v.length > 200) throw invalid(name, v.slice(0, 20) + '...', 'a regular expression of at most 200 characters');
    try {
      return { correlation_id_regex: compileLinearRegex(v) };
    } catch (e) {
      if (e instanceof LinearRegexError) throw invalid(name, v, e.message);
      throw e;
    }
  },
  method: (v) => ({ method: v }),
  path: (v) => ({ path: v }),
  status: (v, name) => ({ status: integerIn(v, name, 100, 599) }),
  protocol: (v, name) => {
    if (v !== 'http/1.0' && v !== 'http/1.1' && v !== 'h2') throw invalid(name, v, 'one of http/1.0, http/1.1, h2');
    return { protocol: v };
  },
  grpc_status: (v, name) => ({ grpc_status: integerIn(v, name, 0, 9999) }),
  min_duration_ms: (v, name) => {
    const ms = Number(v);
    if (!DECIMAL.test(v) || !Number.isFinite(ms)) throw invalid(name, v, 'a non-negative number');
    return { min_duration_ms: ms };
  },
  since: (v, name) => {
    const minutes = Number(v);
    if (!DECIMAL.test(v) || minutes <= 0 || minutes > MAX_SINCE_MINUTES) {
      throw invalid(name, v, `a number of minutes greater than 0, at most ${MAX_SINCE_MINUTES}`);
    }
    return { since_minutes: minutes };
  },
  limit: (v, name) => ({ limit: integerIn(v, name, 1, MAX_LIMIT) }),
};

export const QUERY_PARAMETERS: readonly string[] = Object.keys(PARSERS);

export function parseRequestQuery(params: URLSearchParams): RequestQuery {
  const query: RequestQuery = {};
  const seen = new Set<string>();
  for (const [name, value] of params) {
    const parse = Object.hasOwn(PARSERS, name) ? PARSERS[name] : undefined;
    if (parse === undefined) {
      throw new QueryParamError(name, `unknown parameter ${JSON.stringify(name)}; expected one of ${QUERY_PARAMETERS.join(', ')}`);
    }
    // A repeated parameter is ambiguous: reject it rather than pick one silently.
    if (seen.has(name)) throw new QueryParamError(name, `${name}: given more than once`);
    seen.add(name);
    if (value === '') throw new QueryParamError(name, `${name}: must not be empty`);
    Object.assign(query, parse(value, name));
  }
  return query;
}

function integerIn(value: string, name: string, min: number, max: number): number {
  const n = Number(value);
  if (!INTEGER.test(value) || n < min || n > max) throw invalid(name, value, `an integer ${min}-${max}`);
  return n;
}

function invalid(name: string, value: string, expected: string): QueryParamError {
  return new QueryParamError(name, `${name}: expected ${expected}, got ${JSON.stringify(value)}`);
}

/** For endpoints that only take `since` (minutes, default DEFAULT_SINCE_MINUTES). */
export function parseSinceOnly(params: URLSearchParams): number {
  for (const name of params.keys()) {
    if (name !== 'since') throw new QueryParamError(name, `unknown parameter ${JSON.stringify(name)}; expected since`);
  }
  return parseRequestQuery(params).since_minutes ?? DEFAULT_SINCE_MINUTES;
}
