import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRequestQuery, QUERY_PARAMETERS, QueryParamError } from '../../src/api/query-params.ts';
import type { RequestQuery } from '../../src/store/request-reader.ts';

const parse = (search: string) => parseRequestQuery(new URLSearchParams(search));

function assertRejects(search: string, parameter: string, pattern?: RegExp): void {
  assert.throws(
    () => parse(search),
    (err: unknown) => {
      assert.ok(err instanceof QueryParamError, `${search}: expected QueryParamError, got ${String(err)}`);
      assert.equal(err.parameter, parameter, search);
      if (pattern) assert.match(err.message, pattern);
      return true;
    },
  );
}

describe('parseRequestQuery', () => {
  it('returns an empty query for no parameters, leaving defaults to the store', () => {
    assert.deepEqual(parse(''), {});
  });

  it('parses every parameter', () => {
    assert.deepEqual(
      parse('process=node&correlation_id=abc-1&method=get&path=%2Fusers%3Fx&status=404&min_duration_ms=2.5&since=60&limit=10000'),
      {
        process: 'node',
        correlation_id: 'abc-1',
        method: 'get',
        path: '/users?x',
        status: 404,
        min_duration_ms: 2.5,
        since_minutes: 60,
        limit: 10000,
      } satisfies RequestQuery,
    );
    assert.deepEqual(parse('min_duration_ms=0&since=0.5&limit=1&status=100'), {
      min_duration_ms: 0, since_minutes: 0.5, limit: 1, status: 100,
    });
    assert.deepEqual(parse('since=10080&status=599'), { since_minutes: 10080, status: 599 });
  });

  it('compiles correlation_id_regex and rejects invalid or oversized patterns', () => {
    assert.ok(parse('correlation_id_regex=%5Eorder-%5Cd%2B%24').correlation_id_regex?.test('order-42'));
    assertRejects('correlation_id_regex=(unclosed', 'correlation_id_regex', /valid regular expression/);
    assertRejects(`correlation_id_regex=${'a'.repeat(201)}`, 'correlation_id_regex', /at most 200/);
  });

  it('rejects bad values, naming the parameter', () => {
    assertRejects('status=abc', 'status', /^status: expected an integer 100-599, got "abc"$/);
    assertRejects('status=99', 'status');
    assertRejects('status=600', 'status');
    assertRejects('status=200.0', 'status');
    assertRejects('status=2e2', 'status');
    assertRejects('min_duration_ms=-1', 'min_duration_ms', /non-negative number/);
    assertRejects('min_duration_ms=fast', 'min_duration_ms');
    assertRejects('min_duration_ms=Infinity', 'min_duration_ms');
    assertRejects('since=0', 'since', /greater than 0, at most 10080/);
    assertRejects('since=10081', 'since');
    assertRejects('since=-5', 'since');
    assertRejects('limit=0', 'limit', /^limit: expected an integer 1-10000, got "0"$/);
    assertRejects('limit=10001', 'limit');
    assertRejects('limit=1.5', 'limit');
    assertRejects('limit= 5', 'limit');
  });

  it('rejects empty values, repeated and unknown parameters', () => {
    assertRejects('process=', 'process', /must not be empty/);
    assertRejects('limit', 'limit', /must not be empty/);
    assertRejects('limit=1&limit=2', 'limit', /more than once/);
    assertRejects('proccess=node', 'proccess', /unknown parameter "proccess"; expected one of process,/);
    assertRejects('since_minutes=5', 'since_minutes');
    assertRejects('toString=x', 'toString');
    assertRejects('__proto__=x', '__proto__');
  });

  it('never fails with anything but QueryParamError on garbage (seeded fuzz)', () => {
    const random = mulberry32(0x5eed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const names = [...QUERY_PARAMETERS, '', 'x', '__proto__', 'constructor', 'LIMIT', 'status[]', '%00', '%ZZ'];
    const values = ['', '0', '1', '-1', '99', '100', '599', '600', '1.5', '.5', '5.', '1e3', 'NaN', 'Infinity', ' 7', '0x10',
      '10080', '10081', '10000', '%20', '%', '%E2%82%AC', '\u0000', 'GET', '/a?b=c', '🙂', '9'.repeat(400)];
    const noise = '&=?%+#;/\\ 0123456789abcdefXYZ_-.\u00e9\u0000';
    const limits = { status: [100, 599], since_minutes: [Number.MIN_VALUE, 10080], limit: [1, 10000] } as const;

    let accepted = 0;
    let rejected = 0;
    for (let i = 0; i < 5000; i++) {
      let search = '';
      const parts = Math.floor(random() * 5);
      for (let p = 0; p < parts; p++) {
        if (random() < 0.2) {
          for (let n = Math.floor(random() * 12); n > 0; n--) search += pick([...noise]);
        } else {
          search += `${pick(names)}=${pick(values)}`;
        }
        search += random() < 0.9 ? '&' : pick(['=', '&&', '']);
      }
      const params = new URLSearchParams(search);
      let query: RequestQuery;
      try {
        query = parseRequestQuery(params);
      } catch (err) {
        assert.ok(err instanceof QueryParamError, `${JSON.stringify(search)} threw ${String(err)}`);
        assert.ok(params.has(err.parameter), `${JSON.stringify(search)} named ${err.parameter}`);
        rejected++;
        continue;
      }
      accepted++;
      for (const [key, value] of Object.entries(query)) {
        // The query field for ?since= is since_minutes; every other field is named as its parameter.
        const parameter = key === 'since_minutes' ? 'since' : key;
        assert.ok(QUERY_PARAMETERS.includes(parameter), `${JSON.stringify(search)} produced ${key}`);
        if (value instanceof RegExp) assert.ok(value.source.length <= 200);
        else if (typeof value === 'string') assert.notEqual(value, '');
        else assert.ok(Number.isFinite(value) && value >= 0, `${JSON.stringify(search)}: ${key}=${value}`);
      }
      for (const [key, [min, max]] of Object.entries(limits)) {
        const value = query[key as keyof typeof limits];
        if (value !== undefined) assert.ok(value >= min && value <= max, `${JSON.stringify(search)}: ${key}=${value}`);
      }
      if (query.status !== undefined) assert.ok(Number.isInteger(query.status));
      if (query.limit !== undefined) assert.ok(Number.isInteger(query.limit));
    }
    // Both outcomes must be well exercised, or the generator has drifted.
    assert.ok(accepted > 500 && rejected > 500, `accepted ${accepted}, rejected ${rejected}`);
  });
});

/** Small seeded PRNG so that a fuzz failure reproduces. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
