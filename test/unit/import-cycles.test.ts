/**
 * The import graph of src/ has no cycle (issue 15): every module can be read, tested and
 * moved knowing only what it imports. Imports are read from the source text: static imports
 * (type-only ones too: a cycle of types is still two files that must change together),
 * re-exports, and import() of a literal path.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SRC = join(ROOT, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** Comments out, strings kept: an import named in a comment is not an import. */
function withoutComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\/|(^|[^:'"`\\])\/\/[^\n]*/g, (m, before: string | undefined) => before ?? '');
}

const SPECIFIERS = [
  /\bimport\s+(?:type\s+)?[\w*{}\s,$]*?\s*from\s*['"]([^'"]+)['"]/g,
  /\bimport\s*['"]([^'"]+)['"]/g,
  /\bexport\s+(?:type\s+)?(?:\*(?:\s+as\s+\w+)?|\{[^}]*\})\s*from\s*['"]([^'"]+)['"]/g,
  /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
];

/** The src/ files a file imports (relative specifiers only: packages and node: are leaves). */
export function importsOf(file: string, text: string): string[] {
  const code = withoutComments(text);
  const out = new Set<string>();
  for (const re of SPECIFIERS) {
    for (const m of code.matchAll(re)) {
      const spec = m[1]!;
      if (spec.startsWith('./') || spec.startsWith('../')) out.add(resolve(dirname(file), spec));
    }
  }
  return [...out];
}

/** Every cycle's files, one list per strongly connected component of more than one file (or a self-import). */
export function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const indexOf = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    indexOf.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!indexOf.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, indexOf.get(w)!));
      }
    }
    if (low.get(v) !== indexOf.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(component.sort());
  };
  for (const v of graph.keys()) if (!indexOf.has(v)) visit(v);
  return found;
}

describe('import graph of src/', () => {
  const files = sourceFiles(SRC);
  const graph = new Map(files.map((f) => [f, importsOf(f, readFileSync(f, 'utf8'))]));

  it('reads the imports of every module, and every import names a module that exists', () => {
    assert.ok(files.length > 50, `${files.length} modules`);
    for (const [file, imports] of graph) {
      for (const target of imports) assert.ok(graph.has(target), `${relative(ROOT, file)} imports ${relative(ROOT, target)}, which is not a module of src/`);
    }
    assert.ok([...graph.values()].reduce((n, i) => n + i.length, 0) > files.length, 'imports were found');
  });

  it('has no cycle', () => {
    const found = cycles(graph).map((c) => c.map((f) => relative(ROOT, f)));
    assert.deepEqual(found, [], `import cycles:\n${found.map((c) => `  ${c.join(' <-> ')}`).join('\n')}`);
  });

  it('the cycle finder finds a two-file, a three-file and a self cycle, and nothing in a tree', () => {
    const g = (edges: Record<string, string[]>) => new Map(Object.entries(edges));
    assert.deepEqual(cycles(g({ a: ['b'], b: ['a'], c: ['a'] })), [['a', 'b']]);
    assert.deepEqual(cycles(g({ a: ['b'], b: ['c'], c: ['a'], d: [] })), [['a', 'b', 'c']]);
    assert.deepEqual(cycles(g({ a: ['a'] })), [['a']]);
    assert.deepEqual(cycles(g({ a: ['b', 'c'], b: ['c'], c: [] })), []);
    assert.deepEqual(
      importsOf('/x/src/m.ts', "import { a } from './a.ts';\nimport type { B } from '../b.ts';\n// import { c } from './c.ts';\nexport * from './d.ts';\nconst e = await import('./e.ts');\nimport 'node:fs';"),
      ['/x/src/a.ts', '/x/b.ts', '/x/src/d.ts', '/x/src/e.ts'],
    );
  });
});
