/**
 * The one place that turns values into shell text. Every value that reaches a
 * remote shell goes through `quote`, usually via the `sh` tagged template.
 * Commands carry two renderings: `text` (what runs) and `display` (what the user
 * sees, with secrets masked).
 */

/**
 * Every secret value this process has seen, for maskSecrets. A value shorter
 * than this is not searched for in free text: masking every `42` in the output
 * would garble it and hide nothing (it is still masked wherever it is a Secret).
 */
const MASKED_MIN_LENGTH = 4;
const seenSecrets = new Set<string>();

/**
 * A value that must never be printed: shown as `***` in every display rendering,
 * and, once made, masked in whatever text the CLI prints (maskSecrets: task
 * output, log lines, errors, --verbose), so a remote command that echoes it shows `***`.
 */
export class Secret {
  constructor(readonly value: string) {
    if (value.length >= MASKED_MIN_LENGTH) seenSecrets.add(value);
  }
  toString(): string {
    return '***';
  }
}

/** `text` with every secret value this process has seen replaced by `***` (longest first, so no part of one is left). */
export function maskSecrets(text: string): string {
  if (!seenSecrets.size || !text) return text;
  let out = text;
  for (const value of [...seenSecrets].sort((a, b) => b.length - a.length)) if (out.includes(value)) out = out.split(value).join('***');
  return out;
}

export function secret(value: string): Secret {
  return new Secret(value);
}

/** A shell command ready to run, with a masked rendering for logs. */
export interface Script {
  readonly text: string;
  readonly display: string;
}

export function isScript(v: unknown): v is Script {
  return typeof v === 'object' && v !== null && 'text' in v && 'display' in v && !(v instanceof Secret);
}

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * POSIX shell quoting. Safe words pass through unchanged (readable commands);
 * everything else is wrapped in single quotes with embedded quotes escaped.
 * NUL bytes cannot be passed through a shell at all and are rejected.
 */
export function quote(value: string | number): string {
  const s = String(value);
  if (s.includes('\0')) throw new Error('a shell argument cannot contain a NUL byte');
  if (s === '') return "''";
  if (SAFE.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export type ShellValue = string | number | Secret | Script | readonly (string | number | Secret)[];

function render(v: ShellValue, masked: boolean): string {
  if (v instanceof Secret) return masked ? '***' : quote(v.value);
  if (isScript(v)) return masked ? v.display : v.text;
  if (Array.isArray(v)) return v.map((x) => render(x as ShellValue, masked)).join(' ');
  return quote(v as string | number);
}

/**
 * Tagged template: literal parts are shell syntax, interpolated values are
 * quoted (arrays become several words, Commands are embedded as they are).
 *
 *     sh`mkdir -p ${dir} && chown ${user} ${dir}`
 */
export function sh(strings: TemplateStringsArray, ...values: ShellValue[]): Script {
  let text = strings[0]!;
  let display = strings[0]!;
  values.forEach((v, i) => {
    text += render(v, false) + strings[i + 1];
    display += render(v, true) + strings[i + 1];
  });
  return { text, display };
}

/** Shell text written by the program itself, embedded without quoting. */
export function raw(text: string): Script {
  return { text, display: text };
}

function join(sep: string, cmds: Script[]): Script {
  return { text: cmds.map((c) => c.text).join(sep), display: cmds.map((c) => c.display).join(sep) };
}

/** `a && b && c` */
export const chain = (...cmds: Script[]): Script => join(' && ', cmds);
/** `a; b; c` */
export const sequence = (...cmds: Script[]): Script => join('; ', cmds);
/** `a | b` */
export const pipe = (...cmds: Script[]): Script => join(' | ', cmds);

/** Run `cmd` through `sh -c` as `user` (runuser: no PAM session, no password). */
export function asUser(user: string, cmd: Script): Script {
  return {
    text: `runuser -u ${quote(user)} -- sh -c ${quote(cmd.text)}`,
    display: `runuser -u ${quote(user)} -- sh -c ${quote(cmd.display)}`,
  };
}
