/**
 * An OpenSSH master connection for the rsync of a deploy, opened at the start
 * beside the deploy's own ssh2 connection. rsync's ssh then goes through it
 * (ControlPath) and needs no handshake of its own after the lock and the probe:
 * on a sandbox the rsync of one changed file took 52 ms through it and
 * 320-390 ms with its own connection. Opening it writes nothing on the node
 * (a login only), so it may start before the lock is held.
 *
 * Best effort: when the master cannot be opened (or not soon enough), rsync's
 * ssh finds no socket and connects by itself, as it did before. The socket is
 * in a folder of its own that mkdtemp makes 0700 in the local temp folder: only
 * the local user may connect through it. The master leaves the CLI's process
 * group (ssh -f), so it ends by itself ControlPersist after its last use, also
 * when the CLI was killed; close() ends it at once.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { SshTarget } from './remote.ts';
import { sshOptions } from './rsync.ts';

/** How long an unused master stays up (also one that a killed CLI left). */
const PERSIST_SECONDS = 30;
/** rsync waits this long for a master still logging in, then connects by itself. */
const READY_WAIT_MS = 10_000;

export class RsyncMaster {
  private readonly dir: string;
  private readonly socket: string;
  private readonly opened: Promise<boolean>;
  /** The ssh that logs in; it exits once the master it forked is up. */
  private readonly login: ChildProcess;
  private settled = false;
  private closed = false;

  private constructor(private readonly target: SshTarget) {
    this.dir = mkdtempSync(path.join(tmpdir(), 'kw-ssh-'));
    this.socket = path.join(this.dir, 'master');
    // -f: ssh goes to the background once logged in, so its exit says the master is ready.
    const args = [...sshOptions(target).map(String), '-M', '-N', '-f', '-o', `ControlPath=${this.socket}`, '-o', `ControlPersist=${PERSIST_SECONDS}s`, '-l', target.user, target.host];
    this.login = spawn('ssh', args, { stdio: 'ignore' });
    this.opened = new Promise<boolean>((resolve) => {
      this.login.on('error', () => resolve(false));
      this.login.on('exit', (code) => resolve(code === 0));
    }).finally(() => (this.settled = true));
  }

  /** Start opening the master for `target`; undefined where none can be made (no temp folder). */
  static open(target: SshTarget): RsyncMaster | undefined {
    try {
      return new RsyncMaster(target);
    } catch {
      return undefined;
    }
  }

  /** `target` with the master's socket when the master is up (waiting a little for one logging in), else `target` itself. */
  async targetForRsync(): Promise<SshTarget> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), READY_WAIT_MS)));
    const up = await Promise.race([this.opened, late]);
    clearTimeout(timer);
    return up && !this.closed ? { ...this.target, controlPath: this.socket } : this.target;
  }

  /** End the master (when it is up) and remove its folder. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Still logging in (rsync never needed it): stop that ssh, before it forks a master nobody ends.
    if (!this.settled) this.login.kill();
    if (await this.opened) {
      await new Promise<void>((resolve) => {
        execFile('ssh', ['-o', `ControlPath=${this.socket}`, '-O', 'exit', '-l', this.target.user, this.target.host], { timeout: 5000 }, () => resolve());
      });
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
