/**
 * The module structure of src/: parses every import and re-export in src/**\/*.ts with the
 * TypeScript parser (relative specifiers only; `import type` and `export type … from`
 * included; dynamic `import()` recorded too), builds the module graph and checks:
 * - every relative import resolves to a file in src/;
 * - the static import graph has no cycle (the cycle is printed when there is one);
 * - the layering of the design:
 *   - src/protocol imports nothing outside src/protocol and src/io;
 *   - src/backend imports nothing from src/session or src/server;
 *   - src/commands imports nothing from src/session, src/server, src/backend or src/routing.
 * A violation names the importing file, the line, the specifier and the file it reaches.
 */
import t from 'tap';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SRC = path.join(ROOT, 'src');

interface ImportEdge {
  /** Importing file, relative to the repository root (`src/session/session.ts`). */
  from: string;
  /** Imported file, relative to the repository root, or null when it does not resolve. */
  to: string | null;
  specifier: string;
  line: number;
  typeOnly: boolean;
  dynamic: boolean;
}

function listTs(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) out.push(...listTs(full));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(full);
  }
  return out;
}

const rel = (file: string): string => path.relative(ROOT, file).split(path.sep).join('/');

/** The file a relative specifier names, NodeNext style (`./x.js` is `./x.ts`), or null. */
function resolveSpecifier(fromFile: string, specifier: string): string | null {
  const base = path.resolve(path.dirname(fromFile), specifier);
  const candidates = specifier.endsWith('.js')
    ? [base.slice(0, -3) + '.ts', base]
    : [base, `${base}.ts`, path.join(base, 'index.ts')];
  for (const c of candidates) if (existsSync(c) && statSync(c).isFile()) return c;
  return null;
}

/** Every relative import, re-export and dynamic import of `file`. */
function importsOf(file: string): ImportEdge[] {
  const text = readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const edges: ImportEdge[] = [];
  const add = (specifier: string, node: ts.Node, typeOnly: boolean, dynamic: boolean): void => {
    if (!specifier.startsWith('.')) return;
    const target = resolveSpecifier(file, specifier);
    edges.push({
      from: rel(file),
      to: target === null ? null : rel(target),
      specifier,
      line: sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1,
      typeOnly,
      dynamic,
    });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      // `import type {…}`, or `import { type A, type B }` where every name is type-only.
      const typeOnly =
        clause !== undefined &&
        (clause.isTypeOnly ||
          (clause.name === undefined &&
            clause.namedBindings !== undefined &&
            ts.isNamedImports(clause.namedBindings) &&
            clause.namedBindings.elements.length > 0 &&
            clause.namedBindings.elements.every((e) => e.isTypeOnly)));
      add(node.moduleSpecifier.text, node, typeOnly, false);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier !== undefined && ts.isStringLiteral(node.moduleSpecifier)) {
      add(node.moduleSpecifier.text, node, node.isTypeOnly, false);
    } else if (
      ts.isImportEqualsDeclaration(node) &&
      ts.isExternalModuleReference(node.moduleReference) &&
      ts.isStringLiteral(node.moduleReference.expression)
    ) {
      add(node.moduleReference.expression.text, node, node.isTypeOnly, false);
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments.length > 0 &&
      ts.isStringLiteralLike(node.arguments[0]!)
    ) {
      add(node.arguments[0].text, node, false, true);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      // `import('./x.js').T` in a type position.
      add(node.argument.literal.text, node, true, false);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return edges;
}

/**
 * Every elementary cycle reachable by DFS back edges, each as a path `a → … → a`; with
 * the nodes visited in sorted order, so the report is stable.
 */
function findCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const WHITE = 0;
  const GREY = 1;
  const BLACK = 2;
  const color = new Map<string, number>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  const seen = new Set<string>();
  const dfs = (n: string): void => {
    color.set(n, GREY);
    stack.push(n);
    for (const m of [...(graph.get(n) ?? [])].sort()) {
      const c = color.get(m) ?? WHITE;
      if (c === WHITE) dfs(m);
      else if (c === GREY) {
        const cycle = [...stack.slice(stack.indexOf(m)), m];
        // The same cycle found from another starting node is reported once.
        const body = cycle.slice(0, -1);
        const i = body.indexOf([...body].sort()[0]!);
        const key = [...body.slice(i), ...body.slice(0, i)].join(' → ');
        if (!seen.has(key)) {
          seen.add(key);
          cycles.push(cycle);
        }
      }
    }
    stack.pop();
    color.set(n, BLACK);
  };
  for (const n of [...graph.keys()].sort()) if ((color.get(n) ?? WHITE) === WHITE) dfs(n);
  return cycles;
}

/** The top-level directory of a file under src (`session`), or '' for files directly in src. */
function area(file: string): string {
  const parts = file.split('/');
  return parts.length > 2 ? parts[1]! : '';
}

interface Rule {
  readonly name: string;
  readonly from: string;
  /** True when an import from `from` into `toArea` breaks the rule. */
  breaks(toArea: string, to: string): boolean;
}

const RULES: Rule[] = [
  {
    name: 'src/protocol imports only src/protocol and src/io',
    from: 'protocol',
    breaks: (toArea) => toArea !== 'protocol' && toArea !== 'io',
  },
  {
    name: 'src/backend imports nothing from src/session or src/server',
    from: 'backend',
    breaks: (toArea) => toArea === 'session' || toArea === 'server',
  },
  {
    name: 'src/commands imports nothing from src/session, src/server, src/backend or src/routing',
    from: 'commands',
    breaks: (toArea) => toArea === 'session' || toArea === 'server' || toArea === 'backend' || toArea === 'routing',
  },
];

const describeEdge = (e: ImportEdge): string =>
  `${e.from}:${e.line} ${e.dynamic ? 'import(' : e.typeOnly ? 'import type … from ' : 'import … from '}'${e.specifier}'${e.dynamic ? ')' : ''} → ${e.to ?? '(unresolved)'}`;

const files = listTs(SRC);
const edges = files.flatMap(importsOf);
const staticGraph = new Map<string, string[]>();
for (const f of files) staticGraph.set(rel(f), []);
for (const e of edges) {
  if (e.dynamic || e.to === null || !e.to.endsWith('.ts')) continue;
  const list = staticGraph.get(e.from)!;
  if (!list.includes(e.to)) list.push(e.to);
}

t.test('the parser sees the imports (sanity)', async (t) => {
  t.ok(files.length > 30, `${files.length} source files found`);
  t.ok(files.map(rel).includes('src/session/session.ts'));
  const has = (from: string, to: string, pred: (e: ImportEdge) => boolean = () => true): boolean =>
    edges.some((e) => e.from === from && e.to === to && pred(e));
  t.ok(has('src/session/session.ts', 'src/session/master-channel.ts'), 'a plain import');
  t.ok(has('src/session/session.ts', 'src/commands/index.ts'), 'a multi-line import');
  t.ok(
    has('src/session/master-channel.ts', 'src/backend/lease.ts', (e) => e.typeOnly),
    'an `import type` is included and marked type-only',
  );
  t.ok(has('src/config/index.ts', 'src/config/load.ts'), 'an `export … from` is included');
  t.ok(has('src/index.ts', 'src/config/types.ts', (e) => e.typeOnly), 'an `export type … from` is included');
  t.ok(has('src/cli.ts', 'src/index.ts', (e) => e.dynamic), 'a dynamic import() is recorded');
  t.notOk(
    edges.some((e) => e.specifier === 'node:net' || e.specifier === 'denque'),
    'package and node: imports are left out',
  );
});

t.test('every relative import resolves to a file in src', async (t) => {
  const unresolved = edges.filter((e) => e.to === null || !e.to.startsWith('src/'));
  t.same(unresolved.map(describeEdge), [], 'unresolved or outside src');
});

t.test('the cycle finder finds cycles (self-check)', async (t) => {
  const g = new Map<string, string[]>([
    ['a', ['b']],
    ['b', ['c']],
    ['c', ['a', 'd']],
    ['d', []],
    ['e', ['e']],
  ]);
  t.same(findCycles(g), [
    ['a', 'b', 'c', 'a'],
    ['e', 'e'],
  ]);
  t.same(findCycles(new Map([['a', ['b']], ['b', []]])), []);
});

t.test('no import cycle in src (type-only imports included)', async (t) => {
  const cycles = findCycles(staticGraph);
  const report = cycles.map((c) => c.join(' → '));
  if (report.length > 0) t.comment(`import cycles:\n${report.join('\n')}`);
  t.same(report, [], 'import cycles');
});

for (const rule of RULES) {
  t.test(rule.name, async (t) => {
    const from = edges.filter((e) => area(e.from) === rule.from);
    t.ok(from.length > 0, `src/${rule.from} has relative imports to check`);
    const violations = from.filter((e) => e.to !== null && rule.breaks(area(e.to), e.to)).map(describeEdge);
    if (violations.length > 0) t.comment(`${rule.name}, broken by:\n${violations.join('\n')}`);
    t.same(violations, [], 'imports that break the rule');
  });
}
