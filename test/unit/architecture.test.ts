// The architecture of issue 14, checked from the source (docs/architecture.md explains it):
//   (a) plugins/ and tools/ use core only through its public entry, core/index.ts, which a
//       project-local plugin gets as `kraftwerk`: a built-in can use nothing a local plugin cannot;
//   (b) core imports nothing under plugins/ or tools/, except ONE file in core/cli/ (the CLI
//       wiring) that imports the built-in tables: files at the root of plugins/ and tools/
//       (plugins/builtins.ts, tools/builtins.ts), nothing inside a plugin's folder;
//   (c) no import cycle among the files of core/, plugins/ and tools/ (type-only imports,
//       `export … from` and dynamic `import()` count: a cycle of types is still a knot to read);
//   (d) core's code names no stack component. Comments are aside; identifiers and string
//       literals count. The exceptions are the CLI wiring: the file of (b), which lists the
//       built-ins, and the string literals of the CLI frame's files directly in core/cli/
//       (main.ts, ops-commands.ts, …: the help texts, which test/integration/cli-output.test.ts
//       freezes). core/cli/actions/ and the rest of core are held to the rule in full.
// Imports are read with the TypeScript compiler (typescript is a devDependency), so comments
// and strings that look like imports are not imports.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';
import { repoRoot } from '../helpers/cli.ts';

const LAYERS = ['core', 'plugins', 'tools'];
const ENTRY = 'core/index.ts';
/** The CLI frame: its string literals (help texts) may name the stack. */
const cliFrame = (f: string) => /^core\/cli\/[^/]+\.ts$/.test(f);
/** Words that name a stack component; a word part starting with one of them is a hit (`runsvdir`, `postgresql`, `crontab`, `retireSlots`). */
const STACK_WORDS = ['nginx', 'uwsgi', 'runit', 'runsv', 'svlogd', 'postgres', 'redis', 'cron', 'certbot', 'letsencrypt', 'slot'];

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(path.join(repoRoot, dir))) {
    const rel = `${dir}/${name}`;
    if (statSync(path.join(repoRoot, rel)).isDirectory()) out.push(...tsFiles(rel));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

interface Import {
  from: string;
  line: number;
  specifier: string;
  /** The file it names, relative to the checkout (`kraftwerk` is the entry); undefined for a package. */
  target?: string;
}

const files = LAYERS.flatMap(tsFiles).sort();
const sources = new Map(files.map((f) => [f, readFileSync(path.join(repoRoot, f), 'utf8')]));

function importsOf(file: string): Import[] {
  const text = sources.get(file)!;
  const info = ts.preProcessFile(text, true, true);
  return info.importedFiles.map(({ fileName: specifier, pos }) => {
    const line = text.slice(0, pos).split('\n').length;
    let target: string | undefined;
    if (specifier === 'kraftwerk') target = ENTRY;
    else if (specifier.startsWith('.')) {
      target = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier));
      if (!target.endsWith('.ts') && sources.has(`${target}.ts`)) target = `${target}.ts`;
      else if (target.endsWith('.js') && sources.has(target.replace(/\.js$/, '.ts'))) target = target.replace(/\.js$/, '.ts');
      else if (!sources.has(target) && sources.has(`${target}/index.ts`)) target = `${target}/index.ts`;
    }
    return { from: file, line, specifier, target };
  });
}

const imports = new Map(files.map((f) => [f, importsOf(f)]));
const all = [...imports.values()].flat();
const layer = (f: string) => f.split('/')[0];
const where = (i: Import) => `${i.from}:${i.line} imports '${i.specifier}'`;
/** Fails with every offence on its own line (an array diff would cut a long list short). */
function expectNone(offences: string[], advice: string) {
  if (offences.length) assert.fail(`${advice}\n${offences.length} found:\n  ${offences.join('\n  ')}`);
}

/** Imports from core into plugins/ or tools/. */
const coreToStack = all.filter((i) => layer(i.from) === 'core' && i.target && ['plugins', 'tools'].includes(layer(i.target)));
/** A built-in table: a file at the root of plugins/ or tools/ (not inside one plugin's folder). */
const isBuiltinTable = (target: string) => /^(plugins|tools)\/[^/]+\.ts$/.test(target);
/** The CLI wiring: the one file in core/cli/ that imports the built-in tables. */
const wiringFiles = [...new Set(coreToStack.filter((i) => i.from.startsWith('core/cli/') && isBuiltinTable(i.target!)).map((i) => i.from))];
const wiring = wiringFiles.length === 1 ? wiringFiles[0] : undefined;

describe('architecture: what may import what (issue 14)', () => {
  it('(a) plugins/ and tools/ import from core only its public entry, core/index.ts', () => {
    const bad = all.filter((i) => ['plugins', 'tools'].includes(layer(i.from)) && i.target && layer(i.target) === 'core' && i.target !== ENTRY);
    expectNone(bad.map(where), `a built-in plugin or tool uses a core internal a project-local plugin cannot: export what it needs from ${ENTRY} (or keep it in the plugin)`,
    );
  });

  it('(b) core imports nothing under plugins/ or tools/, except the one CLI wiring file that imports the built-in tables', () => {
    assert.ok(wiringFiles.length <= 1, `more than one file in core/cli/ imports the built-in list: ${wiringFiles.join(', ')}`);
    const bad = coreToStack.filter((i) => !(i.from === wiring && isBuiltinTable(i.target!)));
    expectNone(bad.map(where), `core must not know the stack: the built-in tables live at the root of plugins/ and tools/ (plugins/builtins.ts, tools/builtins.ts), imported only by one file in core/cli/${wiring ? ` (here: ${wiring})` : ''}`,
    );
  });

  it('(c) no import cycle among core/, plugins/ and tools/ (type-only and dynamic imports count)', () => {
    const edges = new Map(files.map((f) => [f, [...new Set(imports.get(f)!.flatMap((i) => (i.target && sources.has(i.target) ? [i.target] : [])))]]));
    // Tarjan's strongly connected components; each component of more than one file (or a file importing itself) holds a cycle.
    let index = 0;
    const idx = new Map<string, number>();
    const low = new Map<string, number>();
    const stack: string[] = [];
    const onStack = new Set<string>();
    const components: string[][] = [];
    const visit = (v: string) => {
      idx.set(v, index);
      low.set(v, index++);
      stack.push(v);
      onStack.add(v);
      for (const w of edges.get(v)!) {
        if (!idx.has(w)) {
          visit(w);
          low.set(v, Math.min(low.get(v)!, low.get(w)!));
        } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
      }
      if (low.get(v) === idx.get(v)) {
        const c: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          c.push(w);
        } while (w !== v);
        if (c.length > 1 || edges.get(v)!.includes(v)) components.push(c);
      }
    };
    for (const f of files) if (!idx.has(f)) visit(f);
    // One concrete cycle per component, shortest from its first file (breadth first, inside the component).
    const cycles = components.map((c) => {
      const inside = new Set(c);
      const start = [...c].sort()[0];
      const prev = new Map<string, string>();
      const queue = [start];
      while (queue.length) {
        const v = queue.shift()!;
        for (const w of edges.get(v)!) {
          if (!inside.has(w)) continue;
          if (w === start) {
            const p = [v];
            while (p[0] !== start) p.unshift(prev.get(p[0])!);
            return [...p, start].join(' → ') + (c.length > p.length ? ` (the knot: ${[...c].sort().join(", ")})` : '');
          }
          if (!prev.has(w)) {
            prev.set(w, v);
            queue.push(w);
          }
        }
      }
      return c.join(', ');
    });
    expectNone(cycles, 'import cycles: move the shared part to the file both depend on, or import the lower layer only');
  });

  it('(d) core names no stack component (comments aside), except in the CLI wiring and the help texts of the CLI frame (core/cli/*.ts)', () => {
    const hits: string[] = [];
    for (const file of files.filter((f) => layer(f) === 'core' && f !== wiring)) {
      const text = sources.get(file)!;
      const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
      const check = (node: ts.Node, word: string, kind: string) => {
        const parts = word
          .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
          .toLowerCase()
          .split(/[^a-z0-9]+/);
        const joined = word.toLowerCase().replace(/[^a-z]/g, '');
        const found = STACK_WORDS.filter((s) => parts.some((p) => p.startsWith(s)) || (s === 'letsencrypt' && joined.includes(s)));
        if (found.length) {
          const line = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
          hits.push(`${file}:${line} ${kind} ${JSON.stringify(word.length > 60 ? `${word.slice(0, 57)}...` : word)} names ${found.join(', ')}`);
        }
      };
      const walk = (node: ts.Node) => {
        if (ts.isIdentifier(node) || ts.isPrivateIdentifier(node)) check(node, node.text, 'identifier');
        else if (ts.isStringLiteralLike(node) || ts.isTemplateHead(node) || ts.isTemplateMiddle(node) || ts.isTemplateTail(node) || ts.isRegularExpressionLiteral(node)) {
          if (!cliFrame(file)) check(node, node.text, 'string');
        }
        ts.forEachChild(node, walk);
      };
      walk(sf);
    }
    expectNone(hits, 'core names the stack: let the plugin contribute it through a hook or an extension point of its own');
  });
});
