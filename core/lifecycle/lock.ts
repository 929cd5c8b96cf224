import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { KraftwerkError } from '../errors.ts';
import { type Script, sh } from '../shell/sh.ts';
import type { Remote } from '../remote/remote.ts';

/**
 * The deploy lock: one per site and node, a directory created atomically with
 * mkdir under /run (runtime state; a reboot clears it; root's only, like
 * everything under /run/kraftwerk). The holder touches it every HEARTBEAT_MS;
 * a lock nobody touched for STALE_SECONDS is taken over with a warning, so a
 * killed CLI never blocks the next deploy for long. A holder on this same
 * machine whose process is gone (Ctrl-C'd, killed) is taken over at once, with
 * the same warning.
 *
 * STALE_SECONDS is well above the time the transport needs to notice a dead
 * connection (SSH keepalives, see ssh.ts: about 30-40 s): a holder whose
 * network blips is either still connected and heart-beating, or has noticed
 * that it lost its connection (and stopped) before anyone may take over.
 * A holder that cannot touch its lock for LOST_AFTER_MS (or finds another
 * token in it) counts its lock as lost and stops before its switch; and the
 * switch itself checks the token on the node.
 */
export const LOCK_DIR = '/run/kraftwerk/locks';
export const HEARTBEAT_MS = 5_000;
export const STALE_SECONDS = 90;
/** A holder whose heartbeat has not gone through for this long assumes its lock may be taken over. */
export const LOST_AFTER_MS = (STALE_SECONDS - 30) * 1000;
/** How long a waiter waits for another waiter's takeover (flock) to finish; it takes milliseconds. */
const TAKEOVER_WAIT_SECONDS = 10;

export interface LockInfo {
  who: string;
  host: string;
  pid: number;
  command: string;
  since: string;
  token: string;
}

export function lockPath(site: string): string {
  return `${LOCK_DIR}/${site}`;
}

export function newLockInfo(command: string): LockInfo {
  return {
    who: os.userInfo().username,
    host: os.hostname(),
    pid: process.pid,
    command,
    since: new Date().toISOString(),
    token: randomBytes(8).toString('hex'),
  };
}

/**
 * Prints `acquired`, `stale <info>` then `acquired`, or `held <info>` (exit 3).
 * With `andThen`, that command runs once the lock is taken, in the same round
 * trip (its output follows the line `---locked---`): a deploy takes the lock
 * and probes the node with one command.
 *
 * Taking over a stale lock is a check followed by a remove and a mkdir; two
 * waiters doing that at once could both win. So the takeover runs under
 * flock(1) on a file beside the lock (root's, in /run): one waiter at a time
 * looks, and the next one sees the fresh lock of the first. A plain mkdir
 * that wins between the remove and the mkdir of a takeover wins alone too:
 * the takeover's own mkdir then fails and it reports `held`.
 */
export function acquireLockCommand(site: string, info: LockInfo, staleSeconds = STALE_SECONDS, andThen?: Script, deadToken?: string): Script {
  const l = lockPath(site);
  const infoFile = `${l}/info`;
  const json = JSON.stringify(info);
  // A holder known to be gone (deadToken) is taken over at once, if the lock is still that holder's.
  const gone = deadToken ? sh` || grep -q ${deadToken} ${infoFile} 2>/dev/null` : sh``;
  const then = andThen ? sh`
echo ${LOCKED_MARKER}
${andThen}` : sh``;
  return sh`mkdir -p ${LOCK_DIR}
if mkdir ${l} 2>/dev/null; then printf '%s\n' ${json} > ${infoFile}; echo acquired
else
  {
    flock -w ${TAKEOVER_WAIT_SECONDS} 9 || { echo 'kraftwerk: could not take the lock takeover file' >&2; exit 1; }
    age=$(( $(date +%s) - $(stat -c %Y ${infoFile} 2>/dev/null || stat -c %Y ${l} 2>/dev/null || date +%s) ))
    if { [ "$age" -gt ${staleSeconds} ]${gone}; } && echo "stale $(cat ${infoFile} 2>/dev/null)" && rm -rf ${l} && mkdir ${l} 2>/dev/null; then
      printf '%s\n' ${json} > ${infoFile}; echo acquired
    else
      echo "held $(cat ${infoFile} 2>/dev/null)"
      exit 3
    fi
  } 9>${takeoverFile(site)}
fi${then}`;
}

/** The file waiters flock while one of them takes over a stale lock (root's, empty). */
function takeoverFile(site: string): string {
  return `${LOCK_DIR}/.${site}.takeover`;
}

/** The line between the lock's output and the output of `andThen`. */
export const LOCKED_MARKER = '---locked---';

export function heartbeatCommand(site: string, token: string): Script {
  const info = `${lockPath(site)}/info`;
  return sh`grep -q ${token} ${info} 2>/dev/null && touch ${info}`;
}

/** Removes the lock only if it is still ours. */
export function releaseLockCommand(site: string, token: string): Script {
  const l = lockPath(site);
  return sh`if grep -q ${token} ${`${l}/info`} 2>/dev/null; then rm -rf ${l}; fi; true`;
}

/** Removes whatever lock there is (`kraftwerk unlock`); prints the holder it removed. */
export function forceUnlockCommand(site: string): Script {
  const l = lockPath(site);
  return sh`if [ -d ${l} ]; then cat ${`${l}/info`} 2>/dev/null || echo '{}'; rm -rf ${l}; fi`;
}

/** The token of a lock held by a process of this machine that no longer exists, else undefined. */
export function deadLocalHolder(raw: string): string | undefined {
  let info: Partial<LockInfo>;
  try {
    info = JSON.parse(raw) as Partial<LockInfo>;
  } catch {
    return undefined;
  }
  if (info.host !== os.hostname() || typeof info.pid !== 'number' || !info.token || info.pid === process.pid) return undefined;
  try {
    process.kill(info.pid, 0);
    return undefined;
  } catch (err) {
    // EPERM: the process exists (another user's): alive.
    return (err as NodeJS.ErrnoException).code === 'ESRCH' ? info.token : undefined;
  }
}

export function describeHolder(raw: string): string {
  try {
    const info = JSON.parse(raw) as Partial<LockInfo>;
    const ago = info.since ? Math.round((Date.now() - Date.parse(info.since)) / 1000) : undefined;
    return `${info.who ?? '?'}@${info.host ?? '?'} (${info.command ?? 'unknown command'}, pid ${info.pid ?? '?'}, since ${info.since ?? '?'}${ago !== undefined ? `, ${ago} s ago` : ''})`;
  } catch {
    return raw.trim() || 'an unknown holder';
  }
}

/** The deploy lock stopped being this command's: another took it over, or it could not be kept fresh. */
export class LockLostError extends KraftwerkError {}

export class DeployLock {
  private timer?: NodeJS.Timeout;
  private lastBeat = Date.now();
  private beating = false;
  /** Set once the lock is known or feared lost; the switch refuses to run then. */
  lost?: LockLostError;
  /** Called once, when the lock is lost (a deploy stops before its switch). */
  onLost?: (error: LockLostError) => void;

  private constructor(
    private readonly remote: Remote,
    private readonly site: string,
    private readonly node: string,
    readonly info: LockInfo,
  ) {}

  /**
   * Take the lock, waiting up to `waitMs` for a holder to finish. Returns the
   * lock and, if a stale one was taken over, a description of its holder.
   */
  static async acquire(
    remote: Remote,
    site: string,
    options: {
      command: string;
      waitMs: number;
      node: string;
      onWait?: (holder: string) => void;
      /** A command to run right after the lock is taken, in the same round trip (its stdout is returned as `output`). */
      andThen?: Script;
      /** Stops the waiting for another holder (an interrupted deploy). */
      signal?: AbortSignal;
    },
  ): Promise<{ lock: DeployLock; tookOverFrom?: string; output: string }> {
    const info = newLockInfo(options.command);
    let command = acquireLockCommand(site, info, STALE_SECONDS, options.andThen);
    if (remote.dryRun) {
      await remote.exec(command);
      return { lock: new DeployLock(remote, site, options.node, info), output: '' };
    }
    const deadline = Date.now() + options.waitMs;
    for (;;) {
      options.signal?.throwIfAborted();
      const res = await remote.exec(command, { check: false });
      const at = res.stdout.indexOf(`\n${LOCKED_MARKER}\n`);
      const lines = (at < 0 ? res.stdout : res.stdout.slice(0, at)).split('\n');
      if (res.code === 0 && lines.some((l) => l === 'acquired')) {
        const stale = lines.find((l) => l.startsWith('stale '));
        const lock = new DeployLock(remote, site, options.node, info);
        lock.startHeartbeat();
        const output = at < 0 ? '' : res.stdout.slice(at + LOCKED_MARKER.length + 2);
        return { lock, tookOverFrom: stale ? describeHolder(stale.slice(6)) : undefined, output };
      }
      const held = lines.find((l) => l.startsWith('held '));
      if (res.code !== 3 || !held) {
        throw new KraftwerkError(`could not take the deploy lock on ${options.node}: ${res.stderr.trim() || lines.join('\n').trim()}`);
      }
      const dead = deadLocalHolder(held.slice(5));
      if (dead) {
        // The holder was a deploy from this machine that is gone: no need to wait for it to go stale.
        command = acquireLockCommand(site, info, STALE_SECONDS, options.andThen, dead);
        continue;
      }
      const holder = describeHolder(held.slice(5));
      if (Date.now() >= deadline) {
        throw new KraftwerkError(`${site} on ${options.node} is locked by ${holder}`, {
          hint: `Wait for it (--lock-wait 5m), or if that command is gone: kraftwerk unlock ${options.node}`,
        });
      }
      options.onWait?.(holder);
      await new Promise((r) => setTimeout(r, Math.min(2000, Math.max(0, deadline - Date.now()))));
    }
  }

  /**
   * The heartbeat touches the lock every HEARTBEAT_MS. It loses the lock when
   * the lock holds another token (taken over, or removed with unlock), or when
   * no beat went through for LOST_AFTER_MS (a waiter may take it over soon).
   */
  private startHeartbeat(): void {
    if (this.remote.dryRun) return;
    this.timer = setInterval(() => {
      if (Date.now() - this.lastBeat > LOST_AFTER_MS) {
        this.lose(`no heartbeat went through for ${Math.round((Date.now() - this.lastBeat) / 1000)} s`);
        return;
      }
      if (this.beating) return;
      this.beating = true;
      this.remote
        .exec(heartbeatCommand(this.site, this.info.token), { check: false })
        .then(
          (res) => {
            if (res.code === 0) this.lastBeat = Date.now();
            else if (this.timer) this.lose('it holds another deploy\'s token (taken over, or removed with kraftwerk unlock)');
          },
          () => undefined, // a lost connection fails the deploy's own commands; a stalled one shows as missing beats
        )
        .finally(() => (this.beating = false));
    }, HEARTBEAT_MS);
    this.timer.unref();
  }

  private lose(why: string): void {
    if (this.lost) return;
    this.stopHeartbeat();
    this.lost = new LockLostError(`the deploy lock of ${this.site} on ${this.node} was lost: ${why}`, {
      hint: 'Nothing was switched by this deploy. See who deploys now with kraftwerk releases; deploy again when it is done.',
    });
    this.onLost?.(this.lost);
  }

  async release(): Promise<void> {
    this.stopHeartbeat();
    await this.remote.exec(releaseLockCommand(this.site, this.info.token), { check: false });
  }

  /**
   * The command that releases this lock, to append to a command that runs
   * anyway (a deploy's last one). Heart-beating stops now; call `release()`
   * as well if that command may not have run.
   */
  releaseCommand(): Script {
    this.stopHeartbeat();
    return releaseLockCommand(this.site, this.info.token);
  }

  /**
   * A test (shell) that holds while this lock is ours and fresh on the node: a
   * long command that runs while it holds is killed on the node when it stops
   * holding (the deploy's connection died, so no heartbeat keeps the lock fresh).
   */
  heldCommand(): Script {
    const info = `${lockPath(this.site)}/info`;
    return sh`grep -q ${this.info.token} ${info} 2>/dev/null && [ $(( $(date +%s) - $(stat -c %Y ${info}) )) -le ${STALE_SECONDS} ]`;
  }

  private stopHeartbeat(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
