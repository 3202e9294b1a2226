/**
 * A checker of PromQL against a Prometheus text scrape, for test/e2e/dashboard.test.ts: a
 * small PromQL lexer and parser (the subset a dashboard needs; anything else is an error, not
 * a pass), a parser of the exposition format, and a walker that checks each metric name,
 * label, function and binary operation of an expression against the scrape.
 */
import assert from 'node:assert/strict';

/** Documented labels that only exist on Kubernetes (set from the pod of the process). */
export const K8S_LABELS = new Set(['namespace', 'pod']);

// ---------------------------------------------------------------------------------------------
// PromQL lexer

type TokKind = 'ident' | 'number' | 'string' | 'range' | 'op' | 'punct' | 'eof';
interface Tok {
  kind: TokKind;
  text: string;
  pos: number;
}

const OPERATORS = ['==', '!=', '<=', '>=', '=~', '!~', '+', '-', '*', '/', '%', '^', '<', '>', '='];

export class PromQLError extends Error {}

function lex(src: string): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  const fail = (msg: string): never => {
    throw new PromQLError(`${msg} at ${i} in ${JSON.stringify(src)}`);
  };
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const start = i;
    if (/[A-Za-z_:]/.test(c)) {
      while (i < src.length && /[A-Za-z0-9_:]/.test(src[i]!)) i++;
      toks.push({ kind: 'ident', text: src.slice(start, i), pos: start });
    } else if (/[0-9.]/.test(c)) {
      const m = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/.exec(src.slice(i));
      if (!m) fail('bad number');
      i += m![0].length;
      if (i < src.length && /[A-Za-z_]/.test(src[i]!)) fail('a duration or name glued to a number (durations belong in [...])');
      toks.push({ kind: 'number', text: m![0], pos: start });
    } else if (c === '"' || c === "'") {
      let value = '';
      i++;
      for (;;) {
        if (i >= src.length) fail('unterminated string');
        const ch = src[i]!;
        if (ch === c) break;
        if (ch === '\n') fail('newline in string');
        if (ch === '\\') {
          const e = src[i + 1];
          const map: Record<string, string> = { '\\': '\\', '"': '"', "'": "'", n: '\n', t: '\t' };
          if (e === undefined || !(e in map)) fail(`bad escape \\${e ?? ''}`);
          value += map[e!]!;
          i += 2;
        } else {
          value += ch;
          i++;
        }
      }
      i++;
      toks.push({ kind: 'string', text: value, pos: start });
    } else if (c === '[') {
      const end = src.indexOf(']', i);
      if (end === -1) fail('unterminated [');
      toks.push({ kind: 'range', text: src.slice(i + 1, end).trim(), pos: start });
      i = end + 1;
    } else if ('(){},'.includes(c)) {
      toks.push({ kind: 'punct', text: c, pos: start });
      i++;
    } else {
      const op = OPERATORS.find((o) => src.startsWith(o, i));
      if (!op) fail(`unexpected character ${JSON.stringify(c)}`);
      toks.push({ kind: 'op', text: op!, pos: start });
      i += op!.length;
    }
  }
  toks.push({ kind: 'eof', text: '', pos: src.length });
  return toks;
}

// ---------------------------------------------------------------------------------------------
// PromQL parser (the subset a dashboard needs; anything else is an error, not a pass)

interface Matcher {
  label: string;
  op: '=' | '!=' | '=~' | '!~';
  value: string;
}
type Grouping = { mode: 'by' | 'without'; labels: string[] } | null;
export type Node =
  | { kind: 'number'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'selector'; metric: string; matchers: Matcher[]; range: string | null }
  | { kind: 'call'; fn: string; args: Node[] }
  | { kind: 'agg'; op: string; grouping: Grouping; param: Node | null; expr: Node }
  | { kind: 'unary'; op: string; expr: Node }
  | {
      kind: 'binary';
      op: string;
      bool: boolean;
      matching: { mode: 'on' | 'ignoring'; labels: string[] } | null;
      group: { side: 'left' | 'right'; labels: string[] } | null;
      lhs: Node;
      rhs: Node;
    };

const AGGREGATIONS = new Set(['sum', 'min', 'max', 'avg', 'count', 'stddev', 'stdvar', 'group', 'topk', 'bottomk', 'quantile']);
const AGG_WITH_PARAM = new Set(['topk', 'bottomk', 'quantile']);
type ArgKind = 'scalar' | 'vector' | 'matrix';
const RANGE_FUNCTIONS = ['rate', 'irate', 'increase', 'delta', 'idelta', 'deriv', 'changes', 'resets'];
const OVER_TIME = ['avg', 'min', 'max', 'sum', 'count', 'last'].map((f) => `${f}_over_time`);
const FUNCTIONS: Record<string, ArgKind[]> = {
  ...Object.fromEntries([...RANGE_FUNCTIONS, ...OVER_TIME].map((f) => [f, ['matrix'] as ArgKind[]])),
  histogram_quantile: ['scalar', 'vector'],
  abs: ['vector'],
  ceil: ['vector'],
  floor: ['vector'],
  sqrt: ['vector'],
  clamp_min: ['vector', 'scalar'],
  clamp_max: ['vector', 'scalar'],
  clamp: ['vector', 'scalar', 'scalar'],
  scalar: ['vector'],
  vector: ['scalar'],
};
/** Counter-only functions: over a gauge they give nonsense. */
const COUNTER_FUNCTIONS = new Set(['rate', 'irate', 'increase', 'resets']);
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'and', 'or', 'unless', 'atan2']);
const PRECEDENCE: Record<string, number> = {
  or: 1,
  and: 2,
  unless: 2,
  '==': 3,
  '!=': 3,
  '<=': 3,
  '<': 3,
  '>=': 3,
  '>': 3,
  '+': 4,
  '-': 4,
  '*': 5,
  '/': 5,
  '%': 5,
  '^': 6,
};
const COMPARISONS = new Set(['==', '!=', '<=', '<', '>=', '>']);
const SET_OPS = new Set(['and', 'or', 'unless']);
const LABEL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A PromQL duration, or one of Grafana's interval macros. Subqueries are not accepted. */
const RANGE = /^(?:(?:\d+(?:ms|s|m|h|d|w|y))+|\$__rate_interval|\$__interval|\$__range)$/;

export class Parser {
  #i = 0;
  readonly #toks: Tok[];
  readonly #src: string;
  constructor(src: string) {
    this.#src = src;
    this.#toks = lex(src);
  }

  #peek(offset = 0): Tok {
    return this.#toks[Math.min(this.#i + offset, this.#toks.length - 1)]!;
  }
  #next(): Tok {
    const t = this.#peek();
    if (t.kind !== 'eof') this.#i++;
    return t;
  }
  #fail(msg: string): never {
    const t = this.#peek();
    throw new PromQLError(`${msg} at ${t.pos} (${t.kind} ${JSON.stringify(t.text)}) in ${JSON.stringify(this.#src)}`);
  }
  #is(kind: TokKind, text?: string): boolean {
    const t = this.#peek();
    return t.kind === kind && (text === undefined || t.text === text);
  }
  #expect(kind: TokKind, text?: string): Tok {
    if (!this.#is(kind, text)) this.#fail(`expected ${text ?? kind}`);
    return this.#next();
  }

  /** A whole expression, up to the end of the input. */
  parseAll(): Node {
    const node = this.parseExpr(1);
    this.#expect('eof');
    return node;
  }

  /** Grafana's `label_values(selector, label)` variable query. */
  parseLabelValues(): { selector: Node; label: string } {
    if (this.#next().text !== 'label_values') this.#fail('expected label_values');
    this.#expect('punct', '(');
    const selector = this.parseExpr(1);
    this.#expect('punct', ',');
    const label = this.#label();
    this.#expect('punct', ')');
    this.#expect('eof');
    return { selector, label };
  }

  #binaryOp(): string | null {
    const t = this.#peek();
    if (t.kind === 'op' && t.text in PRECEDENCE) return t.text;
    if (t.kind === 'ident' && SET_OPS.has(t.text)) return t.text;
    return null;
  }

  parseExpr(minPrec: number): Node {
    let lhs = this.#unary();
    for (;;) {
      const op = this.#binaryOp();
      if (op === null || PRECEDENCE[op]! < minPrec) return lhs;
      this.#next();
      let bool = false;
      if (this.#is('ident', 'bool')) {
        if (!COMPARISONS.has(op)) this.#fail('bool only follows a comparison');
        this.#next();
        bool = true;
      }
      let matching: { mode: 'on' | 'ignoring'; labels: string[] } | null = null;
      let group: { side: 'left' | 'right'; labels: string[] } | null = null;
      if (this.#is('ident', 'on') || this.#is('ident', 'ignoring')) {
        const mode = this.#next().text as 'on' | 'ignoring';
        matching = { mode, labels: this.#labelList() };
        if (this.#is('ident', 'group_left') || this.#is('ident', 'group_right')) {
          const side = this.#next().text === 'group_left' ? 'left' : 'right';
          group = { side, labels: this.#is('punct', '(') ? this.#labelList() : [] };
        }
      }
      const prec = PRECEDENCE[op]!;
      const rhs = this.parseExpr(op === '^' ? prec : prec + 1);
      lhs = { kind: 'binary', op, bool, matching, group, lhs, rhs };
    }
  }

  #unary(): Node {
    if (this.#is('op', '-') || this.#is('op', '+')) {
      const op = this.#next().text;
      return { kind: 'unary', op, expr: this.#unary() };
    }
    return this.#postfix(this.#primary());
  }

  #postfix(node: Node): Node {
    if (this.#is('range')) {
      const range = this.#next().text;
      if (node.kind !== 'selector' || node.range !== null) this.#fail('a range only follows a plain selector (no subqueries)');
      if (!RANGE.test(range)) this.#fail(`bad range [${range}]`);
      return { ...node, range };
    }
    if (this.#is('ident', 'offset')) this.#fail('offset is not supported by this checker');
    return node;
  }

  #primary(): Node {
    const t = this.#peek();
    if (t.kind === 'number') {
      this.#next();
      return { kind: 'number', value: Number(t.text) };
    }
    if (t.kind === 'string') {
      this.#next();
      return { kind: 'string', value: t.text };
    }
    if (t.kind === 'punct' && t.text === '(') {
      this.#next();
      const inner = this.parseExpr(1);
      this.#expect('punct', ')');
      return inner;
    }
    if (t.kind !== 'ident') this.#fail('expected an expression');
    if (KEYWORDS.has(t.text)) this.#fail(`keyword ${t.text} where an expression belongs`);
    const next = this.#peek(1);
    if (AGGREGATIONS.has(t.text) && ((next.kind === 'punct' && next.text === '(') || (next.kind === 'ident' && (next.text === 'by' || next.text === 'without')))) {
      return this.#aggregation();
    }
    if (next.kind === 'punct' && next.text === '(') return this.#call();
    return this.#selector();
  }

  #aggregation(): Node {
    const op = this.#next().text;
    let grouping = this.#grouping();
    this.#expect('punct', '(');
    let param: Node | null = null;
    if (AGG_WITH_PARAM.has(op)) {
      param = this.parseExpr(1);
      this.#expect('punct', ',');
    }
    const expr = this.parseExpr(1);
    this.#expect('punct', ')');
    const after = this.#grouping();
    if (after) {
      if (grouping) this.#fail('two groupings');
      grouping = after;
    }
    return { kind: 'agg', op, grouping, param, expr };
  }

  #grouping(): Grouping {
    if (!this.#is('ident', 'by') && !this.#is('ident', 'without')) return null;
    const mode = this.#next().text as 'by' | 'without';
    return { mode, labels: this.#labelList() };
  }

  #call(): Node {
    const fn = this.#next().text;
    if (!(fn in FUNCTIONS)) this.#fail(`unknown function ${fn}`);
    this.#expect('punct', '(');
    const args: Node[] = [];
    if (!this.#is('punct', ')')) {
      for (;;) {
        args.push(this.parseExpr(1));
        if (!this.#is('punct', ',')) break;
        this.#next();
      }
    }
    this.#expect('punct', ')');
    return { kind: 'call', fn, args };
  }

  #selector(): Node {
    const metric = this.#next().text;
    const matchers: Matcher[] = [];
    if (this.#is('punct', '{')) {
      this.#next();
      while (!this.#is('punct', '}')) {
        const label = this.#label();
        const op = this.#expect('op').text;
        if (op !== '=' && op !== '!=' && op !== '=~' && op !== '!~') this.#fail(`bad matcher operator ${op}`);
        const value = this.#expect('string').text;
        matchers.push({ label, op, value });
        if (!this.#is('punct', ',')) break;
        this.#next();
      }
      this.#expect('punct', '}');
    }
    return { kind: 'selector', metric, matchers, range: null };
  }

  #label(): string {
    const t = this.#expect('ident');
    if (!LABEL_NAME.test(t.text)) this.#fail(`bad label name ${t.text}`);
    return t.text;
  }

  #labelList(): string[] {
    this.#expect('punct', '(');
    const labels: string[] = [];
    while (!this.#is('punct', ')')) {
      labels.push(this.#label());
      if (!this.#is('punct', ',')) break;
      this.#next();
    }
    this.#expect('punct', ')');
    return labels;
  }
}

// ---------------------------------------------------------------------------------------------
// The agent's scrape

export interface Series {
  labels: Map<string, Set<string>>;
}
export interface Scrape {
  types: Map<string, string>;
  series: Map<string, Series>;
}

export function parseScrape(text: string): Scrape {
  const types = new Map<string, string>();
  const series = new Map<string, Series>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const type = /^# TYPE ([A-Za-z_:][A-Za-z0-9_:]*) (\w+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    if (line.startsWith('#')) continue;
    const name = /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(line)?.[0];
    assert.ok(name, `scrape line without a name: ${line}`);
    let s = series.get(name);
    if (!s) series.set(name, (s = { labels: new Map() }));
    let i = name.length;
    if (line[i] === '{') {
      i++;
      while (line[i] !== '}') {
        const m = /^([A-Za-z_][A-Za-z0-9_]*)="/.exec(line.slice(i));
        assert.ok(m, `bad label in scrape line: ${line}`);
        i += m[0].length;
        let value = '';
        while (line[i] !== '"') {
          assert.ok(i < line.length, `unterminated label value: ${line}`);
          if (line[i] === '\\') {
            value += line[i + 1] === 'n' ? '\n' : line[i + 1];
            i += 2;
          } else value += line[i++];
        }
        i++;
        if (line[i] === ',') i++;
        let values = s.labels.get(m[1]!);
        if (!values) s.labels.set(m[1]!, (values = new Set()));
        values.add(value);
      }
      i++;
    }
    assert.match(line.slice(i), /^ \S+( \d+)?$/, `bad sample value: ${line}`);
  }
  return { types, series };
}

/** The family type of a series name: counter, gauge, or histogram for its _bucket/_sum/_count. */
export function familyType(scrape: Scrape, name: string): string | undefined {
  const own = scrape.types.get(name);
  if (own) return own;
  const base = /^(.*)_(bucket|sum|count)$/.exec(name)?.[1];
  return base ? scrape.types.get(base) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Checker: walks the parsed expression against the scrape, returns what it leaves

export interface VariableInfo {
  multi: boolean;
  includeAll: boolean;
}
export interface Value {
  type: 'scalar' | 'vector' | 'matrix' | 'string';
  labels: Set<string>;
}
export interface Use {
  metric: string;
  label: string;
  op: string;
}

export class Checker {
  readonly errors: string[] = [];
  readonly metrics = new Set<string>();
  readonly uses: Use[] = [];
  readonly #scrape: Scrape;
  readonly #vars: Map<string, VariableInfo>;
  constructor(scrape: Scrape, vars: Map<string, VariableInfo>) {
    this.#scrape = scrape;
    this.#vars = vars;
  }

  #err(msg: string): void {
    this.errors.push(msg);
  }

  /** Labels a series may carry: what the scrape shows, plus the Kubernetes ones on request series. */
  #labelsOf(metric: string): Set<string> {
    const s = this.#scrape.series.get(metric);
    if (!s) return new Set();
    const labels = new Set(s.labels.keys());
    if (labels.has('service')) for (const l of K8S_LABELS) labels.add(l);
    return labels;
  }

  check(node: Node): Value {
    switch (node.kind) {
      case 'number':
        return { type: 'scalar', labels: new Set() };
      case 'string':
        return { type: 'string', labels: new Set() };
      case 'selector':
        return this.#selector(node);
      case 'unary': {
        const v = this.check(node.expr);
        if (v.type !== 'scalar' && v.type !== 'vector') this.#err(`unary ${node.op} over a ${v.type}`);
        return v;
      }
      case 'call':
        return this.#call(node);
      case 'agg':
        return this.#agg(node);
      case 'binary':
        return this.#binary(node);
    }
  }

  #selector(node: Extract<Node, { kind: 'selector' }>): Value {
    const { metric } = node;
    this.metrics.add(metric);
    const s = this.#scrape.series.get(metric);
    if (!s) {
      this.#err(`metric ${metric} is not in the agent's /metrics`);
      return { type: node.range ? 'matrix' : 'vector', labels: new Set() };
    }
    const available = this.#labelsOf(metric);
    for (const m of node.matchers) {
      this.uses.push({ metric, label: m.label, op: m.op });
      if (!available.has(m.label)) {
        this.#err(`label ${m.label} is not on ${metric}`);
        continue;
      }
      if (K8S_LABELS.has(m.label) && m.op !== '=~') this.#err(`${m.label} (Kubernetes only) must be matched with =~, not ${m.op}`);
      const refs = [...m.value.matchAll(/\$\{?(\w+)(?::\w+)?\}?/g)].map((r) => r[1]!);
      for (const ref of refs) {
        const v = this.#vars.get(ref);
        if (!v) this.#err(`${metric}{${m.label}} uses $${ref}, which is not a dashboard variable`);
        else if ((v.multi || v.includeAll) && m.op !== '=~' && m.op !== '!~') {
          this.#err(`${metric}{${m.label}${m.op}"${m.value}"}: multi-value/All variable $${ref} needs a regex matcher`);
        }
      }
      if (refs.length > 0 || K8S_LABELS.has(m.label)) continue;
      const values = [...(s.labels.get(m.label) ?? [])];
      if (m.op === '=' && !values.includes(m.value)) {
        this.#err(`${metric}{${m.label}="${m.value}"}: the agent exports no such value (has ${values.join(', ')})`);
      }
      if (m.op === '=~' && !values.some((v) => new RegExp(`^(?:${m.value})$`).test(v))) {
        this.#err(`${metric}{${m.label}=~"${m.value}"}: matches no value the agent exports (${values.join(', ')})`);
      }
    }
    return { type: node.range ? 'matrix' : 'vector', labels: available };
  }

  #call(node: Extract<Node, { kind: 'call' }>): Value {
    const kinds = FUNCTIONS[node.fn]!;
    if (node.args.length !== kinds.length) {
      this.#err(`${node.fn}() takes ${kinds.length} arguments, got ${node.args.length}`);
      return { type: 'vector', labels: new Set() };
    }
    const args = node.args.map((a) => this.check(a));
    args.forEach((a, i) => {
      if (a.type !== kinds[i]) this.#err(`${node.fn}() argument ${i + 1} must be a ${kinds[i]}, got a ${a.type}`);
    });
    if (COUNTER_FUNCTIONS.has(node.fn)) {
      const arg = node.args[0]!;
      if (arg.kind === 'selector') {
        const type = familyType(this.#scrape, arg.metric);
        if (type !== 'counter' && type !== 'histogram') this.#err(`${node.fn}(${arg.metric}) over a ${type ?? 'unknown'}, not a counter`);
      }
    }
    if (node.fn === 'histogram_quantile') {
      const phi = node.args[0]!;
      if (phi.kind !== 'number' || phi.value < 0 || phi.value > 1) this.#err('histogram_quantile needs a literal quantile in [0, 1]');
      for (const sel of selectors(node.args[1]!)) {
        if (!sel.metric.endsWith('_bucket') || familyType(this.#scrape, sel.metric) !== 'histogram') {
          this.#err(`histogram_quantile over ${sel.metric}, not a histogram's _bucket series`);
        }
      }
      const inner = args[1]!;
      if (!inner.labels.has('le')) this.#err('histogram_quantile over an expression without the le label');
      const labels = new Set(inner.labels);
      labels.delete('le');
      return { type: 'vector', labels };
    }
    if (node.fn === 'scalar') return { type: 'scalar', labels: new Set() };
    if (node.fn === 'vector') return { type: 'vector', labels: new Set() };
    return { type: 'vector', labels: args[0]!.labels };
  }

  #agg(node: Extract<Node, { kind: 'agg' }>): Value {
    if (node.param) {
      const p = this.check(node.param);
      if (p.type !== 'scalar') this.#err(`${node.op} needs a scalar parameter`);
    }
    const inner = this.check(node.expr);
    if (inner.type !== 'vector') this.#err(`${node.op}() over a ${inner.type}`);
    const inSelectors = selectors(node.expr).map((s) => s.metric);
    for (const l of node.grouping?.labels ?? []) {
      for (const metric of inSelectors) this.uses.push({ metric, label: l, op: node.grouping!.mode });
      if (!inner.labels.has(l)) this.#err(`${node.op} ${node.grouping!.mode} (${l}): no such label on ${inSelectors.join(', ')}`);
    }
    if (!node.grouping) return { type: 'vector', labels: new Set() };
    if (node.grouping.mode === 'by') return { type: 'vector', labels: new Set(node.grouping.labels) };
    return { type: 'vector', labels: new Set([...inner.labels].filter((l) => !node.grouping!.labels.includes(l))) };
  }

  #binary(node: Extract<Node, { kind: 'binary' }>): Value {
    const l = this.check(node.lhs);
    const r = this.check(node.rhs);
    for (const [side, v] of [['left', l], ['right', r]] as const) {
      if (v.type !== 'scalar' && v.type !== 'vector') this.#err(`${node.op}: ${side} side is a ${v.type}`);
    }
    if (SET_OPS.has(node.op)) {
      if (l.type !== 'vector' || r.type !== 'vector') this.#err(`${node.op} needs vectors on both sides`);
      return { type: 'vector', labels: node.op === 'or' ? new Set([...l.labels, ...r.labels]) : l.labels };
    }
    if (l.type === 'scalar' && r.type === 'scalar') return { type: 'scalar', labels: new Set() };
    if (l.type === 'scalar') return r;
    if (r.type === 'scalar') return l;
    const m = node.matching;
    if (m) {
      for (const lbl of m.labels) {
        const ok = m.mode === 'on' ? l.labels.has(lbl) && r.labels.has(lbl) : l.labels.has(lbl) || r.labels.has(lbl);
        if (!ok) this.#err(`${node.op} ${m.mode}(${lbl}): label not on ${m.mode === 'on' ? 'both sides' : 'either side'}`);
      }
    } else if (!sameSet(l.labels, r.labels)) {
      this.#err(`${node.op}: one-to-one match between different label sets {${[...l.labels]}} and {${[...r.labels]}}`);
    }
    return node.group?.side === 'right' ? r : l;
  }
}

export function selectors(node: Node): Extract<Node, { kind: 'selector' }>[] {
  switch (node.kind) {
    case 'selector':
      return [node];
    case 'call':
      return node.args.flatMap(selectors);
    case 'agg':
      return [...(node.param ? selectors(node.param) : []), ...selectors(node.expr)];
    case 'unary':
      return selectors(node.expr);
    case 'binary':
      return [...selectors(node.lhs), ...selectors(node.rhs)];
    default:
      return [];
  }
}

function sameSet(a: Set<string>, b: Set<string>): boolean {
  return a.size === b.size && [...a].every((x) => b.has(x));
}
