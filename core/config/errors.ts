import type { z } from 'zod';
import type { ConfigProblem } from '../errors.ts';

/**
 * Turns zod issues into one plain-language problem per mistake in the user's
 * config: the key path, what was expected and what was found. The schema's own
 * messages are noun phrases ("a host name such as …"); `expectationMap` gives
 * zod's built-in checks the same form, so every problem reads
 * "<key>: expected <what>, found <value>".
 */

type Issue = z.core.$ZodIssue;
type Path = readonly PropertyKey[];

/** Finds where a key path is in the source file (YAML only; TS configs have no positions). */
export type Locate = (path: Path) => { line?: number; column?: number };

const UNION_WITHOUT_MESSAGE = 'a value of another type';

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  object: 'a mapping',
  record: 'a mapping',
  array: 'a list',
  tuple: 'a list',
  null: 'nothing',
  undefined: 'nothing',
  function: 'a function',
};

/** Parse-level zod error map: the expected value as a noun phrase. Messages set in the schema take precedence. */
export const expectationMap: z.core.$ZodErrorMap = (iss) => {
  switch (iss.code) {
    case 'invalid_type':
      return TYPE_NAMES[iss.expected] ?? `a ${iss.expected}`;
    case 'too_small':
      return bound(iss.origin, 'at least', 'more than', iss.minimum, iss.inclusive, iss.exact);
    case 'too_big':
      return bound(iss.origin, 'at most', 'less than', iss.maximum, iss.inclusive, iss.exact);
    case 'invalid_format':
      if (iss.format === 'starts_with') return `text starting with ${JSON.stringify(iss.prefix)}`;
      if (iss.format === 'ends_with') return `text ending with ${JSON.stringify(iss.suffix)}`;
      if (iss.format === 'includes') return `text containing ${JSON.stringify(iss.includes)}`;
      if (iss.format === 'regex') return `text matching ${iss.pattern}`;
      if (iss.format === 'email') return 'an email address';
      if (iss.format === 'url') return 'a URL';
      return `a valid ${iss.format}`;
    case 'not_multiple_of':
      return `a multiple of ${iss.divisor}`;
    case 'invalid_value':
      return iss.values.map((v) => (typeof v === 'string' ? JSON.stringify(v) : String(v))).join(' or ');
    case 'invalid_union':
      // Unions without a message of their own get one built from their branches (issuesToProblems).
      return UNION_WITHOUT_MESSAGE;
    case 'invalid_key':
      return 'a valid key';
    default:
      return 'a valid value';
  }
};

function bound(
  origin: string,
  inclusiveWord: string,
  exclusiveWord: string,
  limit: number | bigint,
  inclusive: boolean | undefined,
  exact: boolean | undefined,
): string {
  const n = Number(limit);
  const word = exact ? 'exactly' : inclusive === false ? exclusiveWord : inclusiveWord;
  if (origin === 'string') return n === 1 && word === 'at least' ? 'a non-empty string' : `text of ${word} ${n} character${n === 1 ? '' : 's'}`;
  if (origin === 'array' || origin === 'set') return `a list of ${word} ${n} item${n === 1 ? '' : 's'}`;
  return `${word} ${n}`;
}

/** `nodes.production.port`, `cron[0].schedule`, `environ["A B"]`. */
export function formatKeyPath(path: Path): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[\w$-]+$/.test(String(seg))) out += out ? `.${String(seg)}` : String(seg);
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out;
}

/** A value as the user wrote it, short. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value';
  if (typeof value === 'string') {
    const shown = value.length > 60 ? `${value.slice(0, 57)}…` : value;
    return `the text ${JSON.stringify(shown)}`;
  }
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) return value.length === 0 ? 'an empty list' : `a list of ${value.length} item${value.length === 1 ? '' : 's'}`;
  if (typeof value === 'function') return 'a function';
  return 'a mapping';
}

/** Optimal string alignment distance: edits, with a swap of two neighbours counting as one. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The closest candidate if it is close enough to be a likely typo. */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  const lower = word.toLowerCase().replace(/-/g, '_');
  let best: { c: string; d: number } | undefined;
  for (const c of candidates) {
    const d = editDistance(lower, c.toLowerCase());
    if (!best || d < best.d) best = { c, d };
  }
  if (!best) return undefined;
  const allowed = Math.max(1, Math.floor(Math.min(word.length, best.c.length) / 3));
  return best.d <= allowed ? best.c : undefined;
}

/** "unknown key `domian` (did you mean `domain`?); known keys: …" */
export function unknownNameMessage(kind: string, name: string, known: readonly string[], listName = `known ${kind}s`): string {
  const guess = didYouMean(name, known);
  return `unknown ${kind} \`${name}\`${guess ? ` (did you mean \`${guess}\`?)` : ''}; ${listName}: ${known.length ? known.join(', ') : 'none'}`;
}

function valueAt(data: unknown, path: Path): unknown {
  let v = data;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[seg];
  }
  return v;
}

/** Zod 4 internals are stable enough for this: walk to the object schema at `path` to list its keys. */
type Def = {
  type: string;
  shape?: Record<string, unknown>;
  innerType?: unknown;
  in?: unknown;
  options?: unknown[];
  valueType?: unknown;
  element?: unknown;
};
const defOf = (schema: unknown): Def => (schema as { _zod: { def: Def } })._zod.def;

export function keysAt(schema: unknown, path: Path): string[] | undefined {
  const def = defOf(schema);
  switch (def.type) {
    case 'optional':
    case 'default':
    case 'prefault':
    case 'nullable':
    case 'readonly':
    case 'catch':
      return keysAt(def.innerType, path);
    case 'pipe':
      return keysAt(def.in, path);
    case 'union':
      for (const option of def.options ?? []) {
        const keys = keysAt(option, path);
        if (keys) return keys;
      }
      return undefined;
    case 'object':
      if (path.length === 0) return Object.keys(def.shape ?? {});
      return def.shape && String(path[0]) in def.shape ? keysAt(def.shape[String(path[0])], path.slice(1)) : undefined;
    case 'record':
      return path.length ? keysAt(def.valueType, path.slice(1)) : undefined;
    case 'array':
      return path.length ? keysAt(def.element, path.slice(1)) : undefined;
    default:
      return undefined;
  }
}

/** Zod issues of one config as problems, each with its key path and (with `locate`) its line. */
export function issuesToProblems(issues: readonly Issue[], options: { data: unknown; schema: unknown; locate?: Locate }): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const seen = new Set<string>();
  const add = (path: Path, problem: string) => {
    const key = formatKeyPath(path);
    const id = `${key}\0${problem}`;
    if (seen.has(id)) return;
    seen.add(id);
    problems.push({ key, problem, ...options.locate?.(path) });
  };

  const visit = (issue: Issue, prefix: Path) => {
    const path = [...prefix, ...issue.path];
    const found = valueAt(options.data, path);
    switch (issue.code) {
      case 'unrecognized_keys': {
        const known = keysAt(options.schema, path) ?? [];
        for (const key of issue.keys) add([...path, key], unknownNameMessage('key', key, known));
        return;
      }
      case 'invalid_union': {
        const branch = bestBranch(issue.errors);
        if (branch) {
          for (const inner of branch) visit(inner, path);
          return;
        }
        const expected = issue.message === UNION_WITHOUT_MESSAGE ? unionExpectation(issue.errors) : issue.message;
        add(path, expectedFound(expected, found));
        return;
      }
      case 'invalid_key': {
        const name = String(path.at(-1));
        // A check on the name may say why, beyond what it expects (an environment variable the loader acts on).
        const inner = issue.issues.map((i) => i.message + detailOf(i)).join('; ');
        add(path, `the name ${JSON.stringify(name)} is not allowed here: expected ${inner}`);
        return;
      }
      case 'invalid_element':
        for (const inner of issue.issues) visit(inner, path);
        return;
      default: {
        // A check may say why, beyond what it expects (a cron schedule: which field is wrong).
        add(path, expectedFound(issue.message, found) + detailOf(issue));
      }
    }
  };
  for (const issue of issues) visit(issue, []);
  return problems;
}

/** `: <why>` of a custom check that says why (`params.detail`), else nothing. */
function detailOf(issue: Issue | z.core.$ZodRawIssue): string {
  const detail = issue.code === 'custom' ? (issue.params as { detail?: unknown } | undefined)?.detail : undefined;
  return typeof detail === 'string' ? `: ${detail}` : '';
}

function expectedFound(expected: string, found: unknown): string {
  return found === undefined ? `missing; expected ${expected}` : `expected ${expected}, found ${describeValue(found)}`;
}

/** The value "fits" a branch when a branch's issues are deeper than the value itself, or concern its content rather than its type. */
function bestBranch(branches: readonly Issue[][]): Issue[] | undefined {
  const typeMismatch = (i: Issue) =>
    i.path.length === 0 && (i.code === 'invalid_type' || i.code === 'invalid_value' || i.code === 'custom' || i.code === 'invalid_union');
  const deeper = branches.filter((b) => b.some((i) => i.path.length > 0));
  const pool = deeper.length ? deeper : branches.filter((b) => b.length > 0 && !b.every(typeMismatch));
  if (!pool.length) return undefined;
  return pool.reduce((a, b) => (b.length < a.length ? b : a));
}

function unionExpectation(branches: readonly Issue[][]): string {
  const parts = [...new Set(branches.map((b) => b[0]?.message).filter((m): m is string => !!m))];
  return parts.length <= 1 ? (parts[0] ?? 'a valid value') : `${parts.slice(0, -1).join(', ')} or ${parts.at(-1)}`;
}
