/**
 * What the escapers of values in configuration files share. As `sh` is for
 * the shell, every value that a plugin writes into a file of its component
 * (an nginx site, a uWSGI ini, a crontab) goes through that plugin's escaper
 * (plugins/<name>/escape.ts). kraftwerk.yaml is validated first (the plugin's
 * settings schema refuses what its escaper would refuse, with the file and key
 * named); the escapers are the second line, for values a plugin computes or a
 * project-local plugin passes on, so that a value can never add a line, a
 * block or a directive.
 *
 * Each escaper either returns text that the file's parser reads back as
 * exactly the value, or throws a ConfigValueError naming the value and why.
 */
import { KraftwerkError } from '../errors.ts';

/** A value that cannot be written into a config file as it is. */
export class ConfigValueError extends KraftwerkError {
  constructor(
    /** The file's kind as a user knows it: nginx, uWSGI, crontab. */
    readonly file: string,
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
export const CONTROL = /[\u0000-\u001f\u007f]/;

/** Control characters but tab: what would end a line or garble it where a tab is only a space. */
// eslint-disable-next-line no-control-regex
export const LINE_BREAKING = /[\u0000-\u0008\u000a-\u001f\u007f]/;

/** A character as an error message names it: a newline, a NUL byte, ";". */
export function describeChar(c: string): string {
  const names: Record<string, string> = { '\n': 'a newline', '\r': 'a carriage return', '\0': 'a NUL byte', '\t': 'a tab', ' ': 'a space' };
  return names[c] ?? (CONTROL.test(c) ? `the control character U+${c.charCodeAt(0).toString(16).padStart(4, '0')}` : `"${c}"`);
}

