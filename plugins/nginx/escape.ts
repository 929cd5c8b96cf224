/** Values in an nginx site file (see core's ConfigValueError for what every escaper promises). */
import { ConfigValueError, CONTROL, describeChar } from '../../core/index.ts';

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
export function nginxValue(value: string | number): string {
  const s = String(value);
  const bad = CONTROL.exec(s) ?? /\$/.exec(s);
  if (bad) throw new ConfigValueError('nginx', s, `${describeChar(bad[0])} is not allowed (nginx would read it as ${bad[0] === '$' ? 'a variable' : 'part of the file'})`);
  if (s === '') return '""';
  if (NGINX_BARE.test(s)) return s;
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

