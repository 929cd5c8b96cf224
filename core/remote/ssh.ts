/**
 * The SSH transport: one ssh2 connection per node for a whole command, host keys
 * checked against OpenSSH's known_hosts, commands run with their exit code,
 * output streamed as it arrives.
 */
import { readFileSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import type { Duplex } from 'node:stream';
import ssh2 from 'ssh2';
import type { AnyAuthMethod, ClientChannel, Client as SshClient, ServerHostKeyAlgorithm } from 'ssh2';
import { HostKeyMismatchError, KraftwerkError, RemoteCommandError, UnknownHostKeyError } from '../errors.ts';
import { quote, raw, sh, type Script } from '../shell/sh.ts';
import { checkHostKey, keyTypeOf, knownHostsName, knownKeyTypes, recordHostKey } from './knownhosts.ts';
import { CommandTimeoutError, type ExecOptions, type ExecResult, type Remote, type RemoteFile, type RsyncRunOptions, type RsyncSpec, type RsyncStats, type SshTarget } from './remote.ts';
import { resolveSshTarget } from './sshconfig.ts';
import { rsyncTo } from './rsync.ts';
import { RsyncMaster } from './rsync-master.ts';
import { buildSyncFilesCommand, parseSyncFilesOutput } from './syncfiles.ts';
import { retryDroppedHandshake } from './handshake-retry.ts';

const { Client, utils } = ssh2;

export interface ConnectOptions {
  /** Record the key of a host that is not in known_hosts yet (`--accept-new-host-key`). */
  acceptNewHostKey: boolean;
  /** Asked about an unknown host key (with its fingerprint) when the flag is not given; true records it. */
  confirmHostKey?: (fingerprint: string) => Promise<boolean>;
  /** How long to wait for the server to answer, in ms (default 20 s). */
  readyTimeoutMs?: number;
  /** How a ProxyJump host is resolved; resolveSshTarget (ssh -G) unless a test says otherwise. */
  resolveJumpHost?: (host: string, overrides: Partial<SshTarget>) => Promise<SshTarget>;
  /** The command will rsync (a deploy): open rsync's own connection now, beside this one (see rsync-master.ts). */
  rsyncSoon?: boolean;
}

/** Host key algorithms by key type; those of types already in known_hosts are asked for first, as ssh does. */
const HOST_KEY_ALGORITHMS: Record<string, ServerHostKeyAlgorithm[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
};

export function hostKeyAlgorithms(knownTypes: readonly string[]): ServerHostKeyAlgorithm[] {
  const preferred = knownTypes.flatMap((t) => HOST_KEY_ALGORITHMS[t] ?? []);
  const all = Object.values(HOST_KEY_ALGORITHMS).flat();
  return [...new Set([...preferred, ...all])];
}

/** Keepalives: how often one is sent, and how many may go unanswered before the connection counts as dead. */
export const KEEPALIVE_INTERVAL_MS = 10_000;
export const KEEPALIVE_COUNT_MAX = 3;

/** sshd opens at most 10 sessions per connection (MaxSessions); stay below it. */
const MAX_CHANNELS = 8;

/** How long after its timeout a command that does not end is abandoned (the connection may be stalled). */
const TIMEOUT_GRACE_MS = 10_000;

/** How long a stopped interruptible command may take to die on the node before its channel is closed anyway. */
const STOP_GRACE_MS = 15_000;

/** How often an interruptible command's `whileTrue` test runs on the node, in seconds. */
const WHILE_TRUE_EVERY_SECONDS = 3;

/**
 * Every command runs under `sh -c`, whatever the login shell is; with sudo, as
 * root. A timeout is enforced on the server by coreutils `timeout`, which kills
 * the command's whole process group (OpenSSH ignores signal requests once stdin
 * is closed, and closing the channel leaves the command running).
 */
export function wrapForServer(cmd: Script, options: { sudo?: boolean; timeoutMs?: number; pty?: boolean }): string {
  const sudo = options.sudo ? 'sudo -n ' : '';
  const timeout =
    options.timeoutMs === undefined
      ? ''
      : `timeout ${options.pty ? '--foreground ' : ''}-k 5 ${quote((options.timeoutMs / 1000).toFixed(3))} `;
  return `${sudo}${timeout}sh -c ${quote(cmd.text)}`;
}

/**
 * An interruptible command (ExecOptions.interruptible) as it runs on the
 * node. sshd signals nothing when a channel or the connection goes (without
 * a pty), so the command cannot simply die with the connection; instead it
 * runs in the background with /dev/null as input, and a watcher reads the
 * channel's stdin, which the CLI keeps open: end of file (the CLI stopped the
 * command, or it died and the kernel or sshd closed the connection) kills the
 * whole process group (sshd made the command a session and group leader, and
 * nothing here leaves the group; runuser does not either): TERM, and KILL
 * 5 s later. A second watcher runs `whileTrue` every few seconds (the deploy
 * lock still ours and fresh): a connection that died without a word (network
 * gone) ends the command that way, once the lock stops being kept fresh.
 * Watchers write to /dev/null: sshd waits for every holder of the channel's
 * output before it reports the end of the command.
 */
export function interruptibleCommand(cmd: Script, whileTrue?: Script): Script {
  const killGroup = "kill -TERM 0; sleep 5; kill -KILL 0";
  const watch = whileTrue
    ? sh`( trap '' TERM; while sleep ${WHILE_TRUE_EVERY_SECONDS}; do { ${whileTrue}; } >/dev/null 2>&1 || break; done; ${raw(killGroup)} ) </dev/null >/dev/null 2>&1 &
kw_watch=$!
`
    : sh`kw_watch=
`;
  return sh`exec 3<&0
( ${cmd}
) </dev/null 3<&- &
kw_cmd=$!
( trap '' TERM; while read -r kw_line; do :; done; ${raw(killGroup)} ) <&3 >/dev/null 2>&1 &
kw_eof=$!
exec 3<&-
${watch}wait $kw_cmd; kw_rc=$?
kill -KILL $kw_eof $kw_watch 2>/dev/null
exit $kw_rc`;
}

class SshRemote implements Remote {
  readonly dryRun = false;
  private count = 0;
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private lost?: Error;
  private closed = false;

  constructor(
    readonly target: SshTarget,
    private readonly client: SshClient,
    /** Jump hosts this connection goes through, nearest first; closed after it. */
    private readonly hops: SshClient[],
    private readonly rsyncMaster?: RsyncMaster,
  ) {
    client.on('close', () => {
      this.lost ??= new KraftwerkError(`the SSH connection to ${target.name} was closed`, {
        hint: 'The server or the network dropped it; run the command again.',
      });
    });
  }

  get commandCount(): number {
    return this.count;
  }

  async exec(cmd: Script, options: ExecOptions = {}): Promise<ExecResult> {
    this.count++;
    await this.acquireChannel();
    try {
      return await this.run(cmd, options);
    } finally {
      this.releaseChannel();
    }
  }

  async syncFiles(files: RemoteFile[]): Promise<string[]> {
    if (files.length === 0) return [];
    const { command, stdin } = buildSyncFilesCommand(files);
    const result = await this.exec(command, { stdin });
    return parseSyncFilesOutput(result.stdout);
  }

  /** rsync runs beside the ssh2 connection (its own OpenSSH process), with the same target. */
  async rsync(spec: RsyncSpec, options?: RsyncRunOptions): Promise<RsyncStats> {
    return rsyncTo(this.rsyncMaster ? await this.rsyncMaster.targetForRsync() : this.target, spec, options);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const master = this.rsyncMaster?.close();
    for (const client of [this.client, ...[...this.hops].reverse()]) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 2000);
        client.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        client.end();
      });
    }
    await master;
  }

  private acquireChannel(): Promise<void> {
    if (this.running < MAX_CHANNELS) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private releaseChannel(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }

  private run(cmd: Script, options: ExecOptions): Promise<ExecResult> {
    const node = this.target.name;
    if (this.lost) return Promise.reject(this.lost);
    const interruptible = options.interruptible === true;
    if (interruptible && (options.stdin !== undefined || options.pty)) {
      return Promise.reject(new Error('an interruptible command takes no stdin and no pty'));
    }
    if (interruptible && options.signal?.aborted) return Promise.reject(options.signal.reason);
    return new Promise((resolve, reject) => {
      const pty = options.pty ? { term: process.env.TERM ?? 'xterm', rows: process.stdout.rows, cols: process.stdout.columns } : false;
      const script = interruptible ? interruptibleCommand(cmd, options.whileTrue) : cmd;
      const text = wrapForServer(script, { sudo: this.target.sudo, timeoutMs: options.timeoutMs, pty: options.pty });
      // Taken before the channel opens: the command cannot have started earlier on the server, so when the
      // server's `timeout` has stopped it, at least timeoutMs have passed here too (a timer set in the
      // callback below could still be pending then, and the stop would read as a plain failure).
      const startedAt = Date.now();
      this.client.exec(text, { pty }, (err, stream) => {
        if (err) {
          reject(new KraftwerkError(`cannot run a command on ${node}: ${err.message}`, { cause: err }));
          return;
        }
        const timers: NodeJS.Timeout[] = [];
        let settled = false;
        const settle = (fn: () => void) => {
          if (settled) return;
          settled = true;
          timers.forEach(clearTimeout);
          options.signal?.removeEventListener('abort', onAbort);
          fn();
        };

        // Why the command was stopped (an abort, a timeout); exec rejects with it.
        let stopped: Error | undefined;
        const stop = (reason: Error) => {
          if (stopped || settled) return;
          stopped = reason;
          if (interruptible) {
            // End of input: the watcher on the node kills the command's process group; the channel then closes.
            stream.end();
            timers.push(setTimeout(() => settle(() => (stream.close(), reject(reason))), STOP_GRACE_MS));
          } else {
            settle(() => reject(reason));
            stream.close();
          }
        };
        const onAbort = () => stop(options.signal!.reason instanceof Error ? options.signal!.reason : new Error(String(options.signal!.reason)));
        if (interruptible) options.signal?.addEventListener('abort', onAbort, { once: true });

        let silence: NodeJS.Timeout | undefined;
        const heard = () => {
          if (options.silenceMs === undefined) return;
          if (silence) clearTimeout(silence);
          silence = setTimeout(() => stop(new CommandTimeoutError(node, cmd.display, 'silence', options.silenceMs!)), options.silenceMs);
          silence.unref?.();
        };
        heard();
        const out = collect(options.onStdout);
        const errOut = collect(options.onStderr);
        stream.on('data', (d: Buffer) => (heard(), out.write(d)));
        stream.stderr.on('data', (d: Buffer) => (heard(), errOut.write(d)));

        let code: number | null = null;
        let signal: string | undefined;
        stream.on('exit', (exitCode: number | null, exitSignal?: string) => {
          code = exitCode;
          signal = exitSignal ?? undefined;
        });

        const timedOutError = () => new CommandTimeoutError(node, cmd.display, 'total', options.timeoutMs!);
        const timedOut = () => options.timeoutMs !== undefined && Date.now() - startedAt >= options.timeoutMs;
        if (options.timeoutMs !== undefined) {
          timers.push(
            setTimeout(() => {
              settle(() => reject(timedOutError()));
              stream.close();
            }, options.timeoutMs + TIMEOUT_GRACE_MS),
          );
        }

        const detachTerminal = options.pty && options.stdin === undefined ? attachTerminal(stream) : undefined;

        stream.on('close', () => {
          if (silence) clearTimeout(silence);
          detachTerminal?.();
          const result: ExecResult = { code, stdout: out.end(), stderr: errOut.end() };
          if (signal) result.signal = signal;
          settle(() => {
            if (stopped) reject(stopped);
            else if (code !== 0 && timedOut()) reject(timedOutError());
            else if (code !== 0 && options.check !== false) {
              reject(new RemoteCommandError(node, cmd.display, code, options.secretOutput ? '' : result.stdout, result.stderr));
            } else resolve(result);
          });
        });

        if (options.stdin !== undefined) stream.end(options.stdin);
        // Without input the command must see end-of-file at once, or a command reading stdin would hang.
        // An interruptible one reads /dev/null; its channel's input stays open until it is to be stopped.
        else if (!options.pty && !interruptible) stream.end();
      });
    });
  }
}

/** Accumulates a stream as text (UTF-8 split across chunks stays intact) and forwards each piece. */
function collect(onChunk?: (chunk: string) => void) {
  const decoder = new StringDecoder('utf8');
  let text = '';
  return {
    write: (data: Buffer) => {
      const chunk = decoder.write(data);
      if (chunk === '') return;
      text += chunk;
      onChunk?.(chunk);
    },
    end: () => {
      const rest = decoder.end();
      if (rest !== '') {
        text += rest;
        onChunk?.(rest);
      }
      return text;
    },
  };
}

/** An interactive command (pty, no stdin given) gets the local terminal's keystrokes. */
function attachTerminal(stream: ClientChannel): () => void {
  const stdin = process.stdin;
  if (!stdin.isTTY) return () => {};
  stdin.setRawMode(true);
  stdin.pipe(stream);
  stdin.resume();
  return () => {
    stdin.unpipe(stream);
    stdin.setRawMode(false);
    stdin.pause();
  };
}

/** The ways to log in to `target` this machine has (agent, readable key files), and the key files it cannot use with why. */
export function authMethods(target: SshTarget): { methods: AnyAuthMethod[]; unusable: string[] } {
  const methods: AnyAuthMethod[] = [];
  const unusable: string[] = [];
  const agent = process.env.SSH_AUTH_SOCK;
  if (agent) methods.push({ type: 'agent', username: target.user, agent });
  for (const file of target.identityFiles) {
    let data: Buffer;
    try {
      data = readFileSync(file);
    } catch (error) {
      unusable.push(`${file}: ${(error as Error).message}`);
      continue;
    }
    const parsed = utils.parseKey(data);
    if (parsed instanceof Error) {
      unusable.push(
        /passphrase/i.test(parsed.message) ? `${file} needs a passphrase (add it to ssh-agent: ssh-add ${file})` : `${file}: ${parsed.message}`,
      );
      continue;
    }
    methods.push({ type: 'publickey', username: target.user, key: data });
  }
  return { methods, unusable };
}

/** The server closed the connection before its SSH banner: usually sshd's MaxStartups limit, so worth another try. */
class HandshakeDroppedError extends KraftwerkError {}

/** Turns ssh2's low-level failures into messages that name the node and say what to check. */
function connectionError(target: SshTarget, error: Error & { code?: string; level?: string }, unusableKeys: string[]): KraftwerkError {
  const where = `${target.name} (${target.user}@${target.host}:${target.port})`;
  switch (error.code) {
    case 'ECONNREFUSED':
      return new KraftwerkError(`cannot connect to ${where}: connection refused`, {
        cause: error,
        hint: 'Is sshd running on that port? Check host and port in kraftwerk.yaml or ~/.ssh/config.',
      });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new KraftwerkError(`cannot connect to ${target.name}: host name ${target.host} not found`, {
        cause: error,
        hint: 'Check the spelling of the host in kraftwerk.yaml or ~/.ssh/config, and your DNS.',
      });
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new KraftwerkError(`cannot connect to ${where}: ${error.code === 'ETIMEDOUT' ? 'timed out' : 'unreachable'}`, {
        cause: error,
        hint: 'Check that the server is up and that a firewall lets you reach its SSH port.',
      });
  }
  if (error.message === 'Connection lost before handshake' || (error.level === 'client-socket' && error.code === 'ECONNRESET')) {
    return new HandshakeDroppedError(`cannot connect to ${where}: the server closed the connection before the SSH handshake`, {
      cause: error,
      hint: 'Too many connections at once hit sshd\'s MaxStartups limit (raise it in /etc/ssh/sshd_config), or a firewall or fail2ban drops this machine.',
    });
  }
  if (error.level === 'client-timeout') {
    return new KraftwerkError(`cannot connect to ${where}: no SSH handshake before the timeout`, {
      cause: error,
      hint: 'Check that the server is up and that a firewall lets you reach its SSH port.',
    });
  }
  if (error.level === 'client-authentication') {
    const tried = [process.env.SSH_AUTH_SOCK ? 'ssh-agent' : '', ...target.identityFiles].filter(Boolean);
    return new KraftwerkError(`cannot log in to ${where}: the server refused every key (tried ${tried.join(', ') || 'none'})`, {
      cause: error,
      hint: [
        ...unusableKeys,
        `Add your public key to ~${target.user}/.ssh/authorized_keys on the server, or set the node's identity file.`,
      ].join('\n'),
    });
  }
  return new KraftwerkError(`SSH connection to ${where} failed: ${error.message}`, { cause: error });
}

async function verifyHostKey(target: SshTarget, key: Buffer, options: ConnectOptions): Promise<void> {
  const name = knownHostsName(target.host, target.port, target.hostKeyAlias);
  const check = checkHostKey(target.knownHostsFiles, [name], key);
  if (check.status === 'match') return;
  // Only a host never seen before may be accepted (flag, -y or the question); everything else is refused here.
  if (check.status === 'mismatch') throw new HostKeyMismatchError(name, `${keyTypeOf(key)} ${check.fingerprint}`, check.file!, check.known);
  if (check.status === 'revoked') {
    throw new KraftwerkError(`the host key of ${target.name} (${check.fingerprint}) is marked @revoked in ${check.file}`, {
      hint: 'The server must get a new host key before anyone connects to it.',
    });
  }
  if (check.status === 'cert-authority') {
    // ssh2 (1.17) offers no certificate host key algorithms, so a host certificate can never be checked here.
    const cas = (check.known ?? []).map((k) => `${k.type} ${k.fingerprint}`).join(', ');
    throw new KraftwerkError(
      `${name} is covered by a @cert-authority line in ${check.file} (CA ${cas}), but Kraftwerk cannot check host certificates; ` +
        `the server's plain key ${keyTypeOf(key)} ${check.fingerprint} is not in known_hosts, so it is refused rather than accepted as new`,
      {
        hint: `Check that fingerprint on the server (ssh-keygen -lf /etc/ssh/ssh_host_${keyTypeOf(key).replace(/^ssh-/, '')}_key.pub), then add the plain key for ${name} to ${target.knownHostsFiles[0] ?? '~/.ssh/known_hosts'}.`,
      },
    );
  }
  const accepted = options.acceptNewHostKey || (await options.confirmHostKey?.(check.fingerprint)) === true;
  if (!accepted) throw new UnknownHostKeyError(name, check.fingerprint);
  const file = target.knownHostsFiles[0];
  if (!file) throw new KraftwerkError(`no known_hosts file to record the key of ${target.name} in`);
  recordHostKey(file, name, key, { hash: target.hashKnownHosts });
}

function openClient(target: SshTarget, options: ConnectOptions, sock?: Duplex): Promise<SshClient> {
  const { methods, unusable } = authMethods(target);
  if (methods.length === 0) {
    return Promise.reject(
      new KraftwerkError(`no SSH key to log in to ${target.name} with`, {
        hint: [...unusable, 'Start ssh-agent with your key, create a key with ssh-keygen, or set the node\'s identity file.'].join('\n'),
      }),
    );
  }
  const hostnames = [knownHostsName(target.host, target.port, target.hostKeyAlias)];
  return new Promise((resolve, reject) => {
    const client = new Client();
    let hostKeyError: unknown;
    client.on('ready', () => resolve(client));
    client.on('error', (error: Error & { level?: string }) => {
      // A failing agent is not fatal: ssh2 goes on with the key files.
      if (error.level === 'agent') return;
      reject(hostKeyError ?? connectionError(target, error, unusable));
    });
    client.on('close', () => reject(hostKeyError ?? new KraftwerkError(`${target.name} closed the SSH connection during login`)));
    client.connect({
      host: target.host,
      port: target.port,
      username: target.user,
      sock,
      readyTimeout: options.readyTimeoutMs ?? 20_000,
      // A dead connection (network gone, server down) is noticed after about 30-40 s: three
      // unanswered keepalives 10 s apart. The deploy lock goes stale only after far longer
      // (STALE_SECONDS in core/lock.ts), so a holder always learns first that it lost its node.
      keepaliveInterval: KEEPALIVE_INTERVAL_MS,
      keepaliveCountMax: KEEPALIVE_COUNT_MAX,
      algorithms: { serverHostKey: hostKeyAlgorithms(knownKeyTypes(target.knownHostsFiles, hostnames)) },
      hostVerifier: (key: Buffer, verify: (valid: boolean) => void) => {
        verifyHostKey(target, key, options).then(
          () => verify(true),
          (error: unknown) => {
            hostKeyError = error;
            verify(false);
          },
        );
      },
      authHandler: methods,
    });
  });
}

function forwardOut(client: SshClient, host: string, port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    client.forwardOut('127.0.0.1', 0, host, port, (err, stream) => (err ? reject(err) : resolve(stream)));
  });
}

/** `[user@]host[:port]` (or `ssh://…`), the hop syntax of ProxyJump. */
export function parseJumpHost(hop: string): { host: string; user?: string; port?: number } {
  const match = /^(?:ssh:\/\/)?(?:([^@]+)@)?(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(hop.trim());
  if (!match) throw new KraftwerkError(`cannot read the ProxyJump host ${JSON.stringify(hop)}`);
  return {
    user: match[1],
    host: match[2]!.replace(/^\[(.*)\]$/, '$1'),
    port: match[3] === undefined ? undefined : Number(match[3]),
  };
}

/**
 * Connect to a node (through its ProxyJump hosts, each resolved and verified
 * like the node itself). The host key is always verified; an unknown one is
 * recorded only when the user accepted it.
 */
export async function connectSsh(target: SshTarget, options: ConnectOptions): Promise<Remote> {
  // A jump host's own ProxyJump is not followed: the chain is the one written for the node.
  const jumps = await Promise.all(
    (target.proxyJump ? target.proxyJump.split(',') : []).map(async (hop) => {
      const { host, user, port } = parseJumpHost(hop);
      const resolve = options.resolveJumpHost ?? resolveSshTarget;
      return { ...(await resolve(host, { user, port, sudo: false })), proxyJump: undefined };
    }),
  );
  const chain = [...jumps, target];
  const opened: SshClient[] = [];
  let sock: Duplex | undefined;
  // Logs in beside this connection's own handshake, which is the point (see rsync-master.ts).
  const rsyncMaster = options.rsyncSoon ? RsyncMaster.open(target) : undefined;
  try {
    for (const [i, hop] of chain.entries()) {
      // Through a jump host the tunnel is spent by a failed attempt, so only a direct connection is tried again.
      const client = sock
        ? await openClient(hop, options, sock)
        : await retryDroppedHandshake(() => openClient(hop, options), (error) => error instanceof HandshakeDroppedError);
      if (hop === target) return new SshRemote(target, client, opened, rsyncMaster);
      opened.push(client);
      const next = chain[i + 1]!;
      sock = await forwardOut(client, next.host, next.port).catch((error: Error) => {
        throw new KraftwerkError(`jump host ${hop.name} cannot reach ${next.host}:${next.port}: ${error.message}`, {
          hint: `Check ProxyJump for ${target.name} in ~/.ssh/config, and that the jump host allows TCP forwarding.`,
        });
      });
    }
    throw new Error('unreachable: the chain ends with the target');
  } catch (error) {
    for (const client of opened.reverse()) client.end();
    await rsyncMaster?.close();
    throw error;
  }
}
