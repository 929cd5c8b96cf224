import { formatDuration } from '../config/durations.ts';
import { KraftwerkError } from '../errors.ts';
import type { Script } from '../shell/sh.ts';

/** Where and how to reach one server, after ~/.ssh/config has been applied. */
export interface SshTarget {
  /** The name the user gave (node name or host alias); used in messages. */
  name: string;
  /** Address to connect to (HostName). */
  host: string;
  port: number;
  user: string;
  /** Private key files to try, in order (IdentityFile). */
  identityFiles: string[];
  /** ProxyJump value from ssh config, if any (passed to ssh/rsync; ssh2 connects through it). */
  proxyJump?: string;
  /** known_hosts files to check the host key against (UserKnownHostsFile). */
  knownHostsFiles: string[];
  /** Name under which the host key is looked up / recorded (HostKeyAlias or host[:port]). */
  hostKeyAlias?: string;
  /** Record newly accepted host keys hashed (HashKnownHosts in ssh config). */
  hashKnownHosts?: boolean;
  /** Use `sudo -n` for every command (login user is not root). */
  sudo?: boolean;
  /** Socket of an OpenSSH master connection that rsync's ssh goes through when it is up (see rsync-master.ts). */
  controlPath?: string;
}

export interface ExecOptions {
  /** Written to the command's stdin, then stdin is closed. */
  stdin?: string | Buffer;
  /** Called with each chunk of output as it arrives (for streaming into a task). */
  onStdout?: (chunk: string) => void;
  onStderr?: (chunk: string) => void;
  /** When false, a non-zero exit is returned instead of thrown. Default true. */
  check?: boolean;
  /** Allocate a pseudo terminal (interactive `kraftwerk run -i`). */
  pty?: boolean;
  /** Its stdout may hold secrets (an env file): a failure shows stderr only, never stdout. */
  secretOutput?: boolean;
  /** Abort the command after this many ms (it is stopped on the server). */
  timeoutMs?: number;
  /**
   * The command, and everything it starts, is killed on the node when it is
   * stopped: `signal` aborts, a timeout passes, the connection closes (the
   * CLI was killed) or `whileTrue` stops holding. Without this, a command
   * whose connection goes keeps running (sshd does not signal it). It gets
   * /dev/null as stdin (`stdin` cannot be given). For long commands a deploy
   * may have to stop: pip, release commands, the health check.
   */
  interruptible?: boolean;
  /** Stops an interruptible command (exec rejects with the signal's reason). Other commands run to their end. */
  signal?: AbortSignal;
  /** Give up on the command when it printed nothing for this long (an interruptible one is killed on the node). */
  silenceMs?: number;
  /** With `interruptible`: a shell test checked on the node every few seconds; the command is killed when it fails. */
  whileTrue?: Script;
}

/** A remote command ran longer than its timeout, or printed nothing for too long; it was stopped. */
export class CommandTimeoutError extends KraftwerkError {
  constructor(
    readonly node: string,
    /** The command as shown to the user. */
    readonly command: string,
    readonly kind: 'total' | 'silence',
    readonly limitMs: number,
  ) {
    super(`command on ${node} timed out (${CommandTimeoutError.what(kind, limitMs)}) and was stopped: ${command.length > 200 ? `${command.slice(0, 199)}…` : command}`);
  }

  /** "ran longer than 30 min" / "printed nothing for 10 min" */
  static what(kind: 'total' | 'silence', limitMs: number): string {
    return kind === 'total' ? `ran longer than ${formatDuration(limitMs)}` : `printed nothing for ${formatDuration(limitMs)}`;
  }
}

/** A Remote that hands every operation to `inner`: the base of the wrappers that add to some (GuardedRemote, VerboseRemote). */
export class ForwardingRemote implements Remote {
  constructor(readonly inner: Remote) {}

  get target(): SshTarget {
    return this.inner.target;
  }
  get dryRun(): boolean {
    return this.inner.dryRun;
  }
  get commandCount(): number {
    return this.inner.commandCount;
  }

  exec(cmd: Script, options?: ExecOptions): Promise<ExecResult> {
    return this.inner.exec(cmd, options);
  }

  syncFiles(files: RemoteFile[]): Promise<string[]> {
    return this.inner.syncFiles(files);
  }

  rsync(spec: RsyncSpec, options?: RsyncRunOptions): Promise<RsyncStats | undefined> {
    return this.inner.rsync(spec, options);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * A connection whose commands get a command's defaults: the abort signal and
 * lock test of a deploy for its interruptible commands, and a silence timeout
 * for all of them. `inner` is the connection itself, for what must still run
 * once the deploy is stopped (undo, unlock).
 */
export class GuardedRemote extends ForwardingRemote {
  constructor(
    inner: Remote,
    readonly defaults: { signal?: AbortSignal; silenceMs?: number; whileTrue?: Script },
  ) {
    super(inner);
  }

  override exec(cmd: Script, options: ExecOptions = {}): Promise<ExecResult> {
    const d = this.defaults;
    const guarded: ExecOptions = { silenceMs: d.silenceMs, ...options };
    if (options.interruptible) {
      guarded.signal ??= d.signal;
      guarded.whileTrue ??= d.whileTrue;
    }
    return this.inner.exec(cmd, guarded);
  }
}

/** The connection without a deploy's guards (for the undo after the deploy was stopped). */
export function unguarded(remote: Remote): Remote {
  return remote instanceof GuardedRemote ? unguarded(remote.inner) : remote;
}

export interface ExecResult {
  code: number | null;
  signal?: string;
  stdout: string;
  stderr: string;
}

export interface WriteFileOptions {
  mode?: number;
  owner?: string;
  group?: string;
}

/** One file a plugin wants on the server. */
export interface RemoteFile extends WriteFileOptions {
  path: string;
  content: string;
  /** The file must not exist: syncFiles removes it (content and options are ignored). See RemoteFileSet.remove. */
  remove?: boolean;
  /**
   * Live configuration of the release (cron lines, worker services): a deploy
   * writes it in the switch command, right after the rename of `current`, not
   * with the other files, so nothing live changes before the switch and a
   * deploy that fails before it leaves none of it. A rollback puts it back the
   * same way. syncFiles itself ignores the flag. See core/releases.ts.
   */
  atSwitch?: boolean;
}

/**
 * A connection to one node. Core opens one per node for a whole command; plugins
 * receive it in their tasks and never open connections of their own.
 */
export interface Remote {
  readonly target: SshTarget;
  readonly dryRun: boolean;
  /** Run a shell command (through `sh -c` on the server). Throws RemoteCommandError on non-zero exit unless `check: false`. */
  exec(cmd: Script, options?: ExecOptions): Promise<ExecResult>;
  /**
   * Make the server's files match `files` in one round trip: each is written only when
   * its content, mode or owner differ, and removed when it is marked `remove` and there.
   * Returns the paths that changed.
   */
  syncFiles(files: RemoteFile[]): Promise<string[]>;
  /**
   * Copy a folder between this machine and the node with rsync over OpenSSH,
   * with the host, port, keys and known_hosts of this connection. Returns what
   * was copied; undefined when nothing ran (--dry-run shows the command instead).
   */
  rsync(spec: RsyncSpec, options?: RsyncRunOptions): Promise<RsyncStats | undefined>;
  /** Number of commands run so far on this connection (benchmarks report it). */
  readonly commandCount: number;
  close(): Promise<void>;
}

// What Remote.rsync takes and returns (the arguments are built in rsync.ts).

export interface RsyncOptions {
  target: SshTarget;
  /** Local folder whose contents are copied. */
  source: string;
  /** Folder on the server (created by rsync). */
  dest: string;
  /** Previous release on the server: unchanged files become hard links to it. */
  linkDest?: string;
  /** The project's `exclude:` patterns (added to DEFAULT_EXCLUDES). */
  excludes: readonly string[];
  excludeFromFile?: string;
  dryRun?: boolean;
  /**
   * Group of every file and folder on the server (the site's own): the site reads its code through
   * it, and others (nginx passes through the release folder) get no bits at all.
   */
  group?: string;
}

/**
 * One copy between this machine and the node of the Remote that runs it (the
 * node's side is always the Remote's own target).
 */
export type RsyncSpec =
  /** The project into a release folder on the node (deploy). */
  | ({ kind: 'release' } & Omit<RsyncOptions, 'target' | 'dryRun'>)
  /** A folder of the node into a local folder, created private (0700) when it is not there. */
  | { kind: 'pull'; remoteDir: string; localDir: string }
  /** A local folder into a folder of the node, owned by the login user (root), private. */
  | { kind: 'push'; localDir: string; remoteDir: string };

export interface RsyncRunOptions {
  /** Called with each progress or file line rsync prints. */
  onLine?: (line: string) => void;
}

export interface RsyncStats {
  bytesSent: number;
  bytesReceived: number;
  filesTransferred: number;
}
