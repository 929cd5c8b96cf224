import { quote } from './shell.ts';

/**
 * A release's environment file (.kraftwerk/env) is POSIX shell syntax, one
 * `NAME=value` per line with the value quoted by `quote`, so that runit run
 * scripts, cron jobs and `kraftwerk run` can all source it, whatever the
 * values contain.
 */
export function renderEnvFile(vars: Record<string, string>): string {
  const lines = Object.keys(vars)
    .sort()
    .map((k) => `${k}=${quote(vars[k]!)}`);
  return `# Written by kraftwerk; set variables with \`kraftwerk env set\`.\n${lines.join('\n')}\n`;
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
