/** Values in a uWSGI ini (see core's ConfigValueError for what every escaper promises). */
import { ConfigValueError, describeChar } from '../../core/index.ts';

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

