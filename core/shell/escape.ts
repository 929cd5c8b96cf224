/**
 * Values in configuration files, as `sh` (core/shell.ts) is for the shell:
 * every value that a plugin writes into an nginx site, a uWSGI ini or a
 * crontab goes through one of these. kraftwerk.yaml is validated first (its
 * schema refuses what these would refuse, with the file and key named); these
 * are the second line, for values a plugin computes or a project-local plugin
 * passes on, so that a value can never add a line, a block or a directive.
 *
 * Each one either returns text that the file's parser reads back as exactly
 * the value, or throws a ConfigValueError naming the value and why.
 */
import { KraftwerkError } from '../errors.ts';

/** A value that cannot be written into a config file as it is. */
export class ConfigValueError extends KraftwerkError {
  constructor(
    readonly file: 'nginx' | 'uWSGI' | 'crontab',
    readonly value: string,
    reason: string,
  ) {
    super(`${JSON.stringify(value)} cannot be written into the ${file} configuration: ${reason}`, {
      hint: 'Check the kraftwerk.yaml key (or the plugin) this value comes from.',
    });
  }
}

/** Control characters (newline, NUL, escape, DEL, …): no config file takes them in a value. */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Control characters but tab: what would end a line or garble it where a tab is only a space. */
// eslint-disable-next-line no-control-regex
const LINE_BREAKING = /[\u0000-\u0008\u000a-\u001f\u007f]/;

/** A character as an error message names it: a newline, a NUL byte, ";". */
export function describeChar(c: string): string {
  const names: Record<string, string> = { '\n': 'a newline', '\r': 'a carriage return', '\0': 'a NUL byte', '\t': 'a tab', ' ': 'a space' };
  return names[c] ?? (CONTROL.test(c) ? `the control character U+${c.charCodeAt(0).toString(16).padStart(4, '0')}` : `"${c}"`);
}

/** An nginx word that needs no quotes: what nginx's tokenizer reads as one argument as it is. */
const NGINX_BARE = /^[A-Za-z0-9_./:@%+=,~*-]+$/;

/**
 * One argument of an nginx directive. Plain words pass unchanged (readable
 * files); anything else is double-quoted with `"` and `\` escaped, which keeps
 * `;`, `{`, `}`, `#` and spaces inside the one argument. `$` is refused: nginx
 * expands variables inside quotes too, and has no escape for it. Control
 * characters are refused: nginx's quoted strings may span lines, and a
 * newline in a value is never meant.
 */
/** nginx's `expires` values: a time (30d, 12h, 1y, 1h30m, -1), or max, off, epoch. Linear to match (no nested repeats). */
export const NGINX_EXPIRES = /^(max|off|epoch|-?\d{1,9}(ms|s|m|h|d|w|M|y)?(\d{1,9}(ms|s|m|h|d|w|M|y)){0,7})$/;

export function nginxValue(value: string | number): string {
  const s = String(value);
  const bad = CONTROL.exec(s) ?? /\$/.exec(s);
  if (bad) throw new ConfigValueError('nginx', s, `${describeChar(bad[0])} is not allowed (nginx would read it as ${bad[0] === '$' ? 'a variable' : 'part of the file'})`);
  if (s === '') return '""';
  if (NGINX_BARE.test(s)) return s;
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/**
 * What uWSGI reads as a literal value: no magic (`%n`, `%(opt)`), no `$(ENV)`,
 * `@(file)` or `@file`, no quotes. (`<` and `>` mean nothing to uWSGI; a dry
 * run's placeholder venv is `venvs/<hash>`.)
 */
const UWSGI_LITERAL = /^[A-Za-z0-9_./:,+=<>-]+$/;

/**
 * A value of a uWSGI ini option. uWSGI expands `%x` magic variables,
 * `%(option)`, `$(ENV)` and `@(file)` in every value, trims spaces and has no
 * escape for any of it nor for a newline, so only literal values pass, and
 * anything else is refused (the site's environment goes through the envdir,
 * never the ini, for that reason).
 */
export function uwsgiIniValue(value: string | number): string {
  const s = String(value);
  if (UWSGI_LITERAL.test(s)) return s;
  const bad = [...s].find((c) => !UWSGI_LITERAL.test(c));
  const why = bad === undefined ? 'an empty value' : `${describeChar(bad)} is not allowed`;
  throw new ConfigValueError('uWSGI', s, `${why} (uWSGI expands %, $( and @( in values and has no escapes; letters, digits and _ . / : , + = < > - only)`);
}

/**
 * One field of a crontab line before the command (a schedule field, `@daily`,
 * the user): one word of the characters cron's syntax has, so that no field
 * can end the line or shift the fields after it.
 */
export function cronField(value: string): string {
  if (/^[A-Za-z0-9@*,/_-]+$/.test(value)) return value;
  const bad = [...value].find((c) => !/[A-Za-z0-9@*,/_-]/.test(c));
  throw new ConfigValueError('crontab', value, bad === undefined ? 'an empty field' : `${describeChar(bad)} is not allowed in a crontab field`);
}

/** A schedule ("*\/5 * * * *" or @daily) as crontab fields: each field checked, one space between them. */
export function cronSchedule(schedule: string): string {
  const bad = LINE_BREAKING.exec(schedule);
  if (bad) throw new ConfigValueError('crontab', schedule, `${describeChar(bad[0])} is not allowed in a schedule`);
  return schedule.trim().split(/[ \t]+/).map(cronField).join(' ');
}

/**
 * The command part of a crontab line: cron turns `%` into a newline (the
 * command's stdin) unless it is escaped, so each is; a newline would start
 * another line, so it is refused, as are other control characters but tab.
 */
export function cronCommand(command: string): string {
  const bad = LINE_BREAKING.exec(command);
  if (bad) throw new ConfigValueError('crontab', command, `${describeChar(bad[0])} is not allowed in a crontab command`);
  return command.replace(/%/g, '\\%');
}
