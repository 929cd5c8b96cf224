/**
 * The dependencies of a pyproject.toml (PEP 621: `[project].dependencies`), read
 * with a small TOML reader of its own: Kraftwerk has no TOML package, and a
 * pyproject file needs only TOML's plain parts. The reader knows tables
 * (`[a.b]`, `[[a]]`), dotted and quoted keys, basic, literal and multi-line
 * strings, arrays and inline tables; numbers, booleans and dates are kept as
 * their text (nothing here reads them). What it cannot read is an error that
 * names the line, never a guess: a dependency list read wrong would install
 * the wrong packages.
 *
 * Only the dependencies are installed, never the project itself: `pip install .`
 * would build it with its build backend, which pip fetches from a package index
 * in an isolated build environment — exactly what a node without an index lacks.
 */

export type TomlValue = string | TomlValue[] | { [key: string]: TomlValue };
type TomlTable = { [key: string]: TomlValue };

/** A pyproject.toml that cannot be read or has no usable dependency list; `line` is 1-based when known. */
export class PyprojectError extends Error {
  constructor(
    message: string,
    readonly line?: number,
  ) {
    super(line ? `line ${line}: ${message}` : message);
  }
}

class Reader {
  pos = 0;
  constructor(readonly text: string) {}

  line(at = this.pos): number {
    return this.text.slice(0, at).split('\n').length;
  }
  fail(message: string): never {
    throw new PyprojectError(message, this.line());
  }
  peek(n = 1): string {
    return this.text.slice(this.pos, this.pos + n);
  }
  /** Spaces and tabs (and, with `newlines`, line breaks and comments too). */
  skip(newlines: boolean): void {
    for (;;) {
      const c = this.text[this.pos];
      if (c === ' ' || c === '\t') this.pos++;
      else if (newlines && (c === '\n' || c === '\r')) this.pos++;
      else if (newlines && c === '#') this.toLineEnd();
      else return;
    }
  }
  toLineEnd(): void {
    while (this.pos < this.text.length && this.text[this.pos] !== '\n') this.pos++;
  }
  /** After a statement: only a comment may follow on its line. */
  endOfLine(): void {
    this.skip(false);
    if (this.peek() === '#') this.toLineEnd();
    if (this.pos < this.text.length && !/^\r?\n/.test(this.text.slice(this.pos, this.pos + 2))) this.fail(`unexpected ${JSON.stringify(this.peek())} after a value`);
  }

  key(): string[] {
    const parts: string[] = [];
    for (;;) {
      this.skip(false);
      const c = this.peek();
      if (c === '"' || c === "'") parts.push(this.string());
      else {
        const m = /^[A-Za-z0-9_-]+/.exec(this.text.slice(this.pos));
        if (!m) this.fail('expected a key');
        parts.push(m[0]);
        this.pos += m[0].length;
      }
      this.skip(false);
      if (this.peek() !== '.') return parts;
      this.pos++;
    }
  }

  string(): string {
    if (this.peek(3) === '"""' || this.peek(3) === "'''") return this.multiline(this.peek());
    const quoteChar = this.text[this.pos++]!;
    let out = '';
    for (;;) {
      const c = this.text[this.pos++];
      if (c === undefined || c === '\n') this.fail('a string is not closed on its line');
      if (c === quoteChar) return out;
      if (c === '\\' && quoteChar === '"') out += this.escape();
      else out += c;
    }
  }

  multiline(quoteChar: string): string {
    const fence = quoteChar.repeat(3);
    this.pos += 3;
    if (this.peek() === '\n') this.pos++;
    else if (this.peek(2) === '\r\n') this.pos += 2;
    let out = '';
    for (;;) {
      if (this.pos >= this.text.length) this.fail('a multi-line string is not closed');
      if (this.peek(3) === fence && this.text[this.pos + 3] !== quoteChar) {
        this.pos += 3;
        return out;
      }
      const c = this.text[this.pos++]!;
      if (c === '\\' && quoteChar === '"') {
        // A backslash at the end of a line joins it with the next non-blank text.
        if (/^[ \t]*\r?\n/.test(this.text.slice(this.pos))) {
          this.skip(true);
          continue;
        }
        out += this.escape();
      } else out += c;
    }
  }

  escape(): string {
    const c = this.text[this.pos++];
    const simple: Record<string, string> = { b: '\b', t: '\t', n: '\n', f: '\f', r: '\r', '"': '"', '\\': '\\' };
    if (c !== undefined && simple[c] !== undefined) return simple[c]!;
    if (c === 'u' || c === 'U') {
      const len = c === 'u' ? 4 : 8;
      const hex = this.text.slice(this.pos, this.pos + len);
      if (!/^[0-9A-Fa-f]+$/.test(hex) || hex.length !== len) this.fail('a bad \\u escape');
      this.pos += len;
      return String.fromCodePoint(parseInt(hex, 16));
    }
    return this.fail(`an unknown escape \\${c ?? ''}`);
  }

  value(): TomlValue {
    this.skip(false);
    const c = this.peek();
    if (c === '"' || c === "'") return this.string();
    if (c === '[') {
      this.pos++;
      const items: TomlValue[] = [];
      for (;;) {
        this.skip(true);
        if (this.peek() === ']') {
          this.pos++;
          return items;
        }
        items.push(this.value());
        this.skip(true);
        if (this.peek() === ',') this.pos++;
        else if (this.peek() !== ']') this.fail('expected , or ] in an array');
      }
    }
    if (c === '{') {
      this.pos++;
      const table: TomlTable = {};
      this.skip(false);
      if (this.peek() === '}') {
        this.pos++;
        return table;
      }
      for (;;) {
        const key = this.key();
        if (this.peek() !== '=') this.fail('expected = after a key');
        this.pos++;
        assign(table, key, this.value(), this);
        this.skip(false);
        if (this.peek() === '}') {
          this.pos++;
          return table;
        }
        if (this.peek() !== ',') this.fail('expected , or } in an inline table');
        this.pos++;
      }
    }
    // Numbers, booleans, dates: their text, up to where the value ends.
    const m = /^[^\s,\]}#]+/.exec(this.text.slice(this.pos));
    if (!m) this.fail('expected a value');
    this.pos += m[0].length;
    return m[0];
  }
}

function isTable(v: TomlValue | undefined): v is TomlTable {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function assign(table: TomlTable, key: string[], value: TomlValue, r: Reader): void {
  let t = table;
  for (const part of key.slice(0, -1)) {
    const next = t[part] ?? (t[part] = {});
    if (!isTable(next)) r.fail(`the key ${key.join('.')} is defined twice`);
    t = next;
  }
  const last = key[key.length - 1]!;
  if (last in t) r.fail(`the key ${key.join('.')} is defined twice`);
  t[last] = value;
}

/** The document as nested tables (see the file's comment for what is read and how). */
export function parseToml(text: string): TomlTable {
  const r = new Reader(text.replace(/^\uFEFF/, ''));
  const root: TomlTable = {};
  let current = root;
  for (;;) {
    r.skip(true);
    if (r.pos >= r.text.length) return root;
    if (r.peek() === '[') {
      const array = r.peek(2) === '[[';
      r.pos += array ? 2 : 1;
      const key = r.key();
      if (r.peek(array ? 2 : 1) !== (array ? ']]' : ']')) r.fail('expected ] after a table name');
      r.pos += array ? 2 : 1;
      let t = root;
      for (const [i, part] of key.entries()) {
        const last = i === key.length - 1;
        if (last && array) {
          const list: TomlValue = t[part] ?? (t[part] = []);
          if (!Array.isArray(list)) return r.fail(`[[${key.join('.')}]] names a table that is not an array`);
          const entry: TomlTable = {};
          list.push(entry);
          t = entry;
        } else {
          let next: TomlValue = t[part] ?? (t[part] = {});
          if (Array.isArray(next)) next = next[next.length - 1]!;
          if (!isTable(next)) return r.fail(`[${key.join('.')}] names a value that is not a table`);
          t = next;
        }
      }
      current = t;
      r.endOfLine();
      continue;
    }
    const key = r.key();
    if (r.peek() !== '=') r.fail('expected = after a key');
    r.pos++;
    assign(current, key, r.value(), r);
    r.endOfLine();
  }
}

/**
 * `[project].dependencies`, each a PEP 508 requirement, as written. No
 * `[project]` table (a Poetry project's `[tool.poetry]`) or dependencies named
 * `dynamic` (read by the build backend from somewhere else) are errors: they
 * say to point `requirements:` at a requirements file instead. A project that
 * lists no dependencies has none to install.
 */
export function pyprojectDependencies(text: string): string[] {
  const doc = parseToml(text);
  const project = doc.project;
  if (!isTable(project)) {
    throw new PyprojectError(
      isTable(doc.tool) && isTable(doc.tool.poetry)
        ? 'it has no [project] table (PEP 621); Poetry\'s [tool.poetry.dependencies] are not read'
        : 'it has no [project] table (PEP 621) with the dependencies',
    );
  }
  const dynamic = project.dynamic;
  if (Array.isArray(dynamic) && dynamic.includes('dependencies')) {
    throw new PyprojectError('[project] lists "dependencies" in `dynamic`: the build backend reads them from another file');
  }
  const deps = project.dependencies ?? [];
  if (!Array.isArray(deps) || deps.some((d) => typeof d !== 'string')) throw new PyprojectError('[project].dependencies is not a list of strings');
  return (deps as string[]).map((d) => d.trim()).map((d) => {
    // A PEP 508 requirement starts with a name; anything else (`-e .`, `--index-url …`) would be an option to pip.
    if (!/^[A-Za-z0-9]/.test(d) || /[\u0000-\u001f\u007f]/.test(d)) throw new PyprojectError(`[project].dependencies holds ${JSON.stringify(d)}, which is not a requirement such as "flask>=2.2"`);
    return d;
  });
}

/** The normalised distribution name a requirement names (PEP 503: lower case, runs of `-_.` as one `-`). */
export function requirementName(spec: string): string | undefined {
  const name = /^([A-Za-z0-9][A-Za-z0-9._-]*)/.exec(spec.trim())?.[1];
  return name?.toLowerCase().replace(/[._-]+/g, '-');
}
