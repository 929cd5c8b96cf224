import type { Command } from '../shell.ts';

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
}

export interface ExecOptions {
  /** Written to the command's stdin, then stdin is closed. */
  stdin?: string | Buffer;
  /** Called with each chunk of output as it arrives (for streaming into a task). */
  onStdout?: (chunk: string) => void;
  onStderr?: (chunk: string) => void;
  /** When false, a non-zero exit is returned instead of thrown. Default true. */
  check?: boolean;
  /** True for commands that change nothing: `--dry-run` may still run them. */
  readOnly?: boolean;
  /** Allocate a pseudo terminal (interactive `kraftwerk run -i`). */
  pty?: boolean;
  /** Its stdout may hold secrets (an env file): a failure shows stderr only, never stdout. */
  secretOutput?: boolean;
  /** Abort the command after this many ms. */
  timeoutMs?: number;
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
  exec(cmd: Command, options?: ExecOptions): Promise<ExecResult>;
  /**
   * Make the server's files match `files` in one round trip: each is written only when
   * its content, mode or owner differ, and removed when it is marked `remove` and there.
   * Returns the paths that changed.
   */
  syncFiles(files: RemoteFile[]): Promise<string[]>;
  /** Number of commands run so far on this connection (benchmarks report it). */
  readonly commandCount: number;
  close(): Promise<void>;
}
