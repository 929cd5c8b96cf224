import { quote } from './shell/sh.ts';

/**
 * Errors a user can act on. Anything that is not a KraftwerkError is a bug and
 * is printed with its stack; these are printed as one clear message instead.
 */
export class KraftwerkError extends Error {
  /** Process exit code: 1 for failures, 2 for usage and configuration errors. */
  exitCode = 1;
  /** What the user can do about it, printed under the message. */
  hint?: string;
  constructor(message: string, options?: { hint?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.hint = options?.hint;
  }
}

/** Wrong command line usage, or a request the machine cannot serve (exit 2). */
export class UsageError extends KraftwerkError {
  override exitCode = 2;
}

/** One mistake in a config file: the key path, what is wrong, and where (YAML only). */
export interface ConfigProblem {
  /** Key path such as `nodes.production.port` or `cron[0].schedule` ('' for the file as a whole). */
  key: string;
  /** What is wrong: "expected an integer, found 2.5". */
  problem: string;
  line?: number;
  column?: number;
}

/** `file:line:column: key: problem` */
export function formatConfigProblem(file: string, p: ConfigProblem): string {
  const where = p.line ? `${file}:${p.line}${p.column ? `:${p.column}` : ''}` : file;
  return `${where}: ${p.key ? `${p.key}: ` : ''}${p.problem}`;
}

/** kraftwerk.yaml (or kraftwerk.config.ts) is invalid (exit 2). */
export class ConfigError extends KraftwerkError {
  override exitCode = 2;
  /** Every problem found; the message has one line per problem. */
  problems: ConfigProblem[];
  constructor(
    readonly file: string,
    readonly key: string,
    readonly problem: string,
    options?: { line?: number; column?: number; hint?: string },
  ) {
    const first: ConfigProblem = { key, problem, line: options?.line, column: options?.column };
    super(formatConfigProblem(file, first), { hint: options?.hint });
    this.line = options?.line;
    this.problems = [first];
  }
  readonly line?: number;

  /** One error for all the problems of a file, one line each (problems must not be empty). */
  static fromProblems(file: string, problems: ConfigProblem[], options?: { hint?: string }): ConfigError {
    const [first] = problems;
    if (!first) throw new Error('ConfigError.fromProblems needs at least one problem');
    const error = new ConfigError(file, first.key, first.problem, { ...first, hint: options?.hint });
    error.problems = problems;
    error.message = problems.map((p) => formatConfigProblem(file, p)).join('\n');
    return error;
  }
}

/** A remote command exited non-zero. */
export class RemoteCommandError extends KraftwerkError {
  constructor(
    readonly node: string,
    /** The command as shown to the user (secrets masked). */
    readonly command: string,
    readonly code: number | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    const tail = lastLines(stderr.trim() || stdout.trim(), 15);
    super(
      `command failed on ${node} (exit ${code ?? 'signal'}): ${shorten(command, 200)}${tail ? `\n${indent(tail)}` : ''}`,
    );
  }
}

/** The server's host key does not match known_hosts: possible man in the middle. */
export class HostKeyMismatchError extends KraftwerkError {
  constructor(
    readonly host: string,
    readonly fingerprint: string,
    readonly knownHostsFile: string,
    /** The keys known_hosts has for the host. */
    readonly known: { type: string; fingerprint: string }[] = [],
  ) {
    const expected = known.length ? ` (known: ${known.map((k) => `${k.type} ${k.fingerprint}`).join(', ')})` : '';
    super(
      `host key for ${host} does not match ${knownHostsFile}${expected}: the server sent ${fingerprint}. ` +
        'Someone may be intercepting the connection, or the server was reinstalled.',
      { hint: `If the server really changed, remove the old key with: ssh-keygen -R ${quote(host)}` },
    );
  }
}

/** The server's host key is not in known_hosts and the user did not accept it. */
export class UnknownHostKeyError extends KraftwerkError {
  constructor(readonly host: string, readonly fingerprint: string) {
    super(`host ${host} is not in known_hosts (its key is ${fingerprint})`, {
      hint: 'Check the fingerprint, then run again with --accept-new-host-key to record it.',
    });
  }
}

/** A plugin's tap or task failed; names the plugin, the hook and the node. */
export class PluginError extends KraftwerkError {
  constructor(
    readonly plugin: string,
    readonly hook: string,
    readonly node: string | undefined,
    cause: unknown,
  ) {
    const msg = cause instanceof Error ? cause.message : String(cause);
    super(`${plugin} failed in ${hook}${node ? ` on ${node}` : ''}: ${msg}`, {
      cause,
      hint: cause instanceof KraftwerkError ? cause.hint : undefined,
    });
    if (cause instanceof KraftwerkError) this.exitCode = cause.exitCode;
  }

  /** `err` as the failure of `plugin` in `hook` on `node`; one that names its plugin already is kept as it is. */
  static of(plugin: string, hook: string, node: string | undefined, err: unknown): PluginError {
    return err instanceof PluginError ? err : new PluginError(plugin, hook, node, err);
  }
}

export function lastLines(text: string, n: number): string {
  const lines = text.split('\n');
  return lines.slice(Math.max(0, lines.length - n)).join('\n');
}

/** Why a command run with `check: false` failed, on one line: its last stderr lines, else its exit status. */
export function failureReason(result: { code: number | null; stderr: string }): string {
  return lastLines(result.stderr.trim(), 3).split('\n').join('; ') || `exit status ${result.code}`;
}

function shorten(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

function indent(s: string): string {
  return s
    .split('\n')
    .map((l) => `  │ ${l}`)
    .join('\n');
}
