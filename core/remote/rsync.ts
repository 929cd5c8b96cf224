/**
 * Copying folders between this machine and a node: rsync over OpenSSH, told to
 * use exactly the host, port, keys and known_hosts the ssh2 connection used, and
 * to refuse any host key it cannot verify. The project goes into a release
 * folder (deploy); dump folders go both ways (backup --download, sync-services).
 * Data between two nodes goes through the machine running the CLI: no agent
 * forwarding, no node needs a key for another. Only a Remote runs these
 * (Remote.rsync), so --dry-run decides in one place what happens.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { KraftwerkError, lastLines } from '../errors.ts';
import { quote } from '../shell/sh.ts';
import { retryDroppedHandshake, sshClosedBeforeBanner } from './handshake-retry.ts';
import type { RsyncOptions, RsyncRunOptions, RsyncSpec, RsyncStats, SshTarget } from './remote.ts';

/** Never deployed: VCS data, caches, local virtualenvs and Kraftwerk's own local state. */
export const DEFAULT_EXCLUDES = ['.git', '__pycache__', '*.pyc', 'node_modules', '.venv', 'venv', '.kraftwerk'];

/** The original Kraftwerk's exclude file, honoured when a project still has one. */
export const RSYNC_EXCLUDE_FILE = 'rsync_exclude.txt';

/** `rsync_exclude.txt` in the project folder, if there is one. */
export function findRsyncExcludeFile(projectDir: string): string | undefined {
  const file = join(projectDir, RSYNC_EXCLUDE_FILE);
  return existsSync(file) ? file : undefined;
}

/**
 * rsync splits its -e string itself and understands '…' and "…" but not the
 * backslash in quote()'s `'\''`; `'"'"'` means the same to a POSIX shell and to rsync.
 */
function quoteForRsync(value: string | number): string {
  return quote(value).replace(/'\\''/g, `'"'"'`);
}

/** ssh's options for `target`: same port, keys, known_hosts; strict host key checking; never a prompt. */
export function sshOptions(target: SshTarget): (string | number)[] {
  // ssh splits a UserKnownHostsFile list on spaces; a path with spaces goes in double quotes.
  const knownHosts = target.knownHostsFiles.map((f) => (/\s/.test(f) ? `"${f}"` : f)).join(' ');
  const parts: (string | number)[] = ['-p', target.port];
  for (const file of target.identityFiles) parts.push('-i', file);
  parts.push('-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes');
  // A dropped network must end the transfer in well under a minute, as it ends the deploy's own
  // SSH connection (same connect timeout, keepalives 10 s apart, 3 unanswered), not after TCP's
  // retransmissions give up (many minutes): the deploy fails, and its lock is not held meanwhile.
  parts.push('-o', 'ConnectTimeout=20', '-o', 'ServerAliveInterval=10', '-o', 'ServerAliveCountMax=3');
  if (target.proxyJump) parts.push('-o', `ProxyJump=${target.proxyJump}`);
  if (target.hostKeyAlias) parts.push('-o', `HostKeyAlias=${target.hostKeyAlias}`);
  return parts;
}

/** The `ssh …` command rsync runs (sshOptions), through the master connection when there is one (without, ssh connects itself). */
export function rsyncSshCommand(target: SshTarget): string {
  const parts = ['ssh', ...sshOptions(target)];
  if (target.controlPath) parts.push('-o', `ControlPath=${target.controlPath}`, '-o', 'ControlMaster=no');
  return parts.map(quoteForRsync).join(' ');
}

/** `user@host:path` as rsync wants it (an IPv6 address in brackets). */
function remoteSpec(target: SshTarget, path: string): string {
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  return `${target.user}@${host}:${path}`;
}

export function buildRsyncArgs(options: RsyncOptions): string[] {
  const { target } = options;
  const args = [
    '--recursive',
    '--links',
    '--times',
    '--perms',
    // Readable by the site user whatever the local umask was; executables stay executable.
    options.group ? '--chmod=u=rwX,g=rX,o=' : '--chmod=u=rwX,go=rX',
    '--compress',
    '--delete',
    '--stats',
    '--info=progress2',
  ];
  if (options.group) args.push(`--chown=:${options.group}`);
  if (options.dryRun) args.push('--dry-run');
  args.push('-e', rsyncSshCommand(target));
  if (target.sudo) args.push('--rsync-path=sudo -n rsync');
  if (options.linkDest) args.push(`--link-dest=${options.linkDest}`);
  args.push(...releaseFilterArgs(options));
  // The trailing slash copies the folder's contents, not the folder itself.
  args.push(options.source.endsWith('/') ? options.source : `${options.source}/`, remoteSpec(target, options.dest));
  return args;
}

/** What a release leaves out: the same for the transfer and for the listing of the no-change check. */
function releaseFilterArgs(options: Pick<RsyncOptions, 'excludes' | 'excludeFromFile'>): string[] {
  const args = [...DEFAULT_EXCLUDES, ...options.excludes].map((pattern) => `--exclude=${pattern}`);
  if (options.excludeFromFile) args.push(`--exclude-from=${options.excludeFromFile}`);
  return args;
}

/**
 * The project's files as a release transfer would send them (the same excludes), listed by rsync
 * on this machine without any connection: one line per file with its type, mode, size and time,
 * each regular file's time then to the nanosecond (rsync's own listing has seconds), so that an
 * edit rsync's quick check would send changes the listing too. Folders count by name and mode only.
 */
export async function listReleaseTree(options: Pick<RsyncOptions, 'source' | 'excludes' | 'excludeFromFile'>): Promise<string> {
  const source = options.source.endsWith('/') ? options.source : `${options.source}/`;
  const { stdout } = await runLocal('rsync', ['--recursive', '--links', '--list-only', ...releaseFilterArgs(options), source]);
  const lines = stdout.split('\n').filter(Boolean);
  const stamped = await Promise.all(
    lines.map(async (line) => {
      // "-rw-r--r--          1,234 2026/12/02 02:49:35 path/of file"
      const m = /^(\S)(\S*)\s+[\d,.]+ \S+ \S+ (.*)$/.exec(line);
      if (!m) return line;
      // A folder's time changes when a file in it comes and goes (an excluded __pycache__ too): rsync sends nothing for it.
      if (m[1] === 'd') return `d${m[2]} ${m[3]}`;
      if (m[1] !== '-') return line;
      const s = await stat(join(source, m[3]!), { bigint: true }).catch(() => undefined);
      return s ? `${line} ${s.mtimeNs}` : line;
    }),
  );
  return stamped.join('\n');
}

/** Run a local program, its stdout as text; a failure names it with its stderr. */
function runLocal(program: string, args: string[]): Promise<{ stdout: string }> {
  return new Promise((resolve, reject) => {
    execFile(program, args, { maxBuffer: 512 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new KraftwerkError(`${program} could not list the project's files: ${lastLines(String(stderr).trim() || err.message, 4)}`));
      else resolve({ stdout: String(stdout) });
    });
  });
}

function folderArgs(target: SshTarget): string[] {
  const args = ['--recursive', '--links', '--times', '--compress', '--partial', '--stats', '--info=progress2', '-e', rsyncSshCommand(target)];
  if (target.sudo) args.push('--rsync-path=sudo -n rsync');
  // Dumps hold the site's data: private to whoever copies them, on both sides.
  return [...args, '--chmod=D0700,F0600'];
}

/** A folder path with one trailing slash: rsync copies the folder's contents, not the folder itself. */
const contentsOf = (dir: string): string => dir.replace(/\/?$/, '/');

/** The rsync arguments of `spec`, run against `target`. */
/** The rsync command as --dry-run and --verbose show it. */
export function rsyncCommandLine(target: SshTarget, spec: RsyncSpec): string {
  return `rsync ${rsyncArgs(target, spec).join(' ')}`;
}

export function rsyncArgs(target: SshTarget, spec: RsyncSpec): string[] {
  switch (spec.kind) {
    case 'release': {
      const { kind: _kind, ...options } = spec;
      return buildRsyncArgs({ ...options, target });
    }
    case 'pull':
      return [...folderArgs(target), remoteSpec(target, contentsOf(spec.remoteDir)), contentsOf(spec.localDir)];
    case 'push':
      return [...folderArgs(target), contentsOf(spec.localDir), remoteSpec(target, contentsOf(spec.remoteDir))];
  }
}

/** Run `spec` against `target` for real (SshRemote.rsync); `target.name` names the node in errors. */
export async function rsyncTo(target: SshTarget, spec: RsyncSpec, options: RsyncRunOptions = {}): Promise<RsyncStats> {
  if (spec.kind === 'pull') await mkdir(spec.localDir, { recursive: true, mode: 0o700 });
  const args = rsyncArgs(target, spec);
  return retryDroppedHandshake(
    () => runRsync(args, options.onLine, target.name),
    (error) => error instanceof RsyncFailedError && error.rsyncExit === 255 && sshClosedBeforeBanner(error.stderr),
  );
}

/** Numbers from `rsync --stats` (printed with thousands separators). */
export function parseRsyncStats(output: string): RsyncStats {
  const number = (label: string): number => {
    const match = new RegExp(`^${label}: ([\\d,.]+)`, 'm').exec(output);
    return match ? Number(match[1]!.replace(/[,.]/g, '')) : 0;
  };
  return {
    bytesSent: number('Total bytes sent'),
    bytesReceived: number('Total bytes received'),
    filesTransferred: number('Number of regular files transferred'),
  };
}

/**
 * Run rsync with `args` (from buildRsyncArgs), handing each progress line to
 * `onLine`. `node` names the server in error messages.
 */
export function runRsync(args: readonly string[], onLine?: (line: string) => void, node = 'the server'): Promise<RsyncStats> {
  return new Promise((resolve, reject) => {
    // The C locale keeps the --stats labels in English whatever the user's language.
    const child = spawn('rsync', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let stdout = '';
    let stderr = '';
    let partial = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      // Progress lines end in \r (redrawn in place), file lines in \n.
      const lines = (partial + chunk).split(/[\r\n]/);
      partial = lines.pop()!;
      for (const line of lines) if (line.trim() !== '') onLine?.(line.trim());
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', (error: NodeJS.ErrnoException) => {
      reject(
        error.code === 'ENOENT'
          ? new KraftwerkError('rsync is not installed on this machine', {
              hint: 'Install it (Debian/Ubuntu: apt-get install rsync; macOS: brew install rsync).',
            })
          : error,
      );
    });
    child.on('close', (code) => {
      if (partial.trim() !== '') onLine?.(partial.trim());
      if (code === 0) {
        resolve(parseRsyncStats(stdout));
        return;
      }
      reject(new RsyncFailedError(node, code, stderr));
    });
  });
}

/** rsync ended with an error; `stderr` is kept whole so a caller can tell a dropped connection from the rest. */
class RsyncFailedError extends KraftwerkError {
  constructor(
    node: string,
    readonly rsyncExit: number | null,
    readonly stderr: string,
  ) {
    super(`rsync to ${node} failed (exit ${rsyncExit}):\n${lastLines(stderr.trim(), 15)}`, { hint: rsyncHint(rsyncExit, stderr) });
  }
}

function rsyncHint(code: number | null, stderr: string): string | undefined {
  if (/unknown option|unrecognized option/.test(stderr) && !/remote|server/i.test(stderr)) {
    return 'Kraftwerk needs rsync 3.1 or newer on this machine (macOS: brew install rsync).';
  }
  if (/command not found|rsync: not found/.test(stderr)) return 'rsync is missing on the server: run `kraftwerk setup-node`.';
  if (/Host key verification failed/.test(stderr)) {
    return 'ssh could not verify the host key; connect once with --accept-new-host-key, or check known_hosts.';
  }
  if (code === 255) return 'rsync\'s ssh could not connect; `ssh` to the node with the same settings shows why.';
  return undefined;
}
