import { quote } from './sh.ts';

/**
 * A release's environment file (.kraftwerk/env) is POSIX shell syntax, one
 * `NAME=value` per line with the value quoted by `quote`, so that runit run
 * scripts, cron jobs and `kraftwerk run` can all source it, whatever the
 * values contain.
 *
 * `siteNames` are the variables that came from `kraftwerk env set`
 * (shared/env.local). The file records their names in a comment: a rollback
 * takes the release's own generated values and replaces exactly those with
 * what env.local holds now (see withCurrentSiteVariables), so a rotated or
 * removed secret does not come back.
 */
export function renderEnvFile(vars: Record<string, string>, siteNames: readonly string[] = []): string {
  const lines = Object.keys(vars)
    .sort()
    .map((k) => `${k}=${quote(vars[k]!)}`);
  const site = siteNames.length ? `${SITE_NAMES_LINE}${[...siteNames].sort().join(' ')}\n` : '';
  return `# Written by kraftwerk; set variables with \`kraftwerk env set\`.\n${site}${lines.join('\n')}\n`;
}

const SITE_NAMES_LINE = '# from kraftwerk env set (shared/env.local): ';

/**
 * The names renderEnvFile recorded as set with `env set`. None for a file
 * without that line (no site variables, or written by an older version: then
 * a variable removed with `env unset` since cannot be told apart and stays).
 */
export function siteNamesOf(text: string): string[] {
  const line = text.split('\n').find((l) => l.startsWith(SITE_NAMES_LINE));
  return line === undefined ? [] : line.slice(SITE_NAMES_LINE.length).split(' ').filter(Boolean);
}

/**
 * Parse a file written by renderEnvFile (quote()'s output: bare words, and
 * single-quoted runs joined with \' for embedded quotes). Values may span lines.
 */
export function parseEnvFile(text: string): Record<string, string> {
  const vars: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    if (text[i] === '\n' || text[i] === ' ' || text[i] === '\t') {
      i++;
      continue;
    }
    if (text[i] === '#') {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=/.exec(text.slice(i, i + 300));
    if (!m) {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    i += m[0].length;
    let value = '';
    while (i < text.length && text[i] !== '\n' && text[i] !== ' ') {
      if (text[i] === "'") {
        const end = text.indexOf("'", i + 1);
        if (end < 0) break;
        value += text.slice(i + 1, end);
        i = end + 1;
      } else if (text[i] === '\\' && i + 1 < text.length) {
        value += text[i + 1];
        i += 2;
      } else {
        value += text[i];
        i++;
      }
    }
    vars[m[1]!] = value;
  }
  return vars;
}

/** One problem in a dotenv file: its 1-based line and what is wrong. */
export interface DotenvProblem {
  line: number;
  problem: string;
}

const DOTENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DOUBLE_QUOTE_ESCAPES: Record<string, string> = { n: '\n', r: '\r', t: '\t', '"': '"', '\\': '\\', $: '$', '`': '`' };

/**
 * A dotenv file for `kraftwerk env set --from-file` (the syntax docs/commands.md shows):
 * - blank lines and lines starting with `#` are ignored; `export ` before a name is allowed;
 * - `NAME=value`: an unquoted value is trimmed and ends at ` #` (a comment);
 * - `NAME='value'`: literal, nothing is special, may span lines;
 * - `NAME="value"`: `\n \r \t \" \\ \$` and `` \` `` are escapes, may span lines;
 * - nothing is expanded: `$OTHER` stays as it is written (no shell runs this file).
 * Throws nothing: the caller reports every problem with the file's name.
 */
export function parseDotenv(text: string): { vars: Record<string, string>; problems: DotenvProblem[] } {
  const vars: Record<string, string> = {};
  const problems: DotenvProblem[] = [];
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([^=\s]+)\s*=\s*(.*)$/.exec(line);
    if (!m) {
      problems.push({ line: lineNo, problem: 'expected NAME=value' });
      continue;
    }
    const name = m[1]!;
    let rest = m[2]!;
    if (!DOTENV_NAME.test(name)) {
      problems.push({ line: lineNo, problem: `${JSON.stringify(name)} is not a variable name (letters, digits and _, not starting with a digit)` });
      continue;
    }
    let value: string;
    const quote = rest[0];
    if (quote === "'" || quote === '"') {
      // A quoted value may go on over the following lines, up to its closing quote.
      let body = rest.slice(1);
      let end = closingQuote(body, quote);
      while (end < 0 && i + 1 < lines.length) {
        body += `\n${lines[++i]}`;
        end = closingQuote(body, quote);
      }
      if (end < 0) {
        problems.push({ line: lineNo, problem: `the ${quote === '"' ? 'double' : 'single'} quote is never closed` });
        continue;
      }
      const after = body.slice(end + 1).trim();
      if (after !== '' && !after.startsWith('#')) {
        problems.push({ line: lineNo, problem: `unexpected text after the closing quote: ${JSON.stringify(after)}` });
        continue;
      }
      body = body.slice(0, end);
      value = quote === "'" ? body : body.replace(/\\(.)/gs, (all, c: string) => DOUBLE_QUOTE_ESCAPES[c] ?? all);
    } else {
      const comment = rest.search(/\s#/);
      if (comment >= 0) rest = rest.slice(0, comment);
      value = rest.trim();
    }
    if (value.includes('\0')) {
      problems.push({ line: lineNo, problem: `the value of ${name} contains a NUL byte` });
      continue;
    }
    vars[name] = value;
  }
  return { vars, problems };
}

/** Index of the quote that closes a value (a `\"` inside double quotes does not). */
function closingQuote(body: string, quote: string): number {
  for (let j = 0; j < body.length; j++) {
    if (quote === '"' && body[j] === '\\') j++;
    else if (body[j] === quote) return j;
  }
  return -1;
}

/**
 * Variables as a dotenv file that parseDotenv (`env set --from-file`) reads back
 * exactly: plain words bare, everything else in double quotes with `\n \r \t \" \\ \$`
 * and `` \` `` escaped (so the file is one line per variable). Names sorted.
 */
export function renderDotenv(vars: Record<string, string>): string {
  const escapes: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '"': '\\"', '\\': '\\\\', $: '\\$', '`': '\\`' };
  const lines = Object.keys(vars)
    .sort()
    .map((k) => {
      const v = vars[k]!;
      return /^[A-Za-z0-9_@%+=:,./-]*$/.test(v) ? `${k}=${v}` : `${k}="${v.replace(/[\n\r\t"\\$`]/g, (c) => escapes[c]!)}"`;
    });
  return lines.length ? `${lines.join('\n')}\n` : '';
}
