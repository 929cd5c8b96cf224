/**
 * Which config files Kraftwerk may read, and above all execute
 * (kraftwerk.config.ts and the plugin files it names are code; kraftwerk.yaml
 * decides what runs on the nodes). The rule is OpenSSH's StrictModes and git's
 * safe.directory: a file is used only when it belongs to the user running the
 * CLI, nobody else can write it, and nobody else can replace it (its folder is
 * not writable by others, unless sticky).
 *
 * The upward search is bounded like git's discovery of a repository, so that
 * a folder above the project (a shared /home, /srv, /tmp) never contributes a
 * config. It looks in the working folder and its parents and ends after
 *   - a folder holding `.git` (the repository root is the top of a project),
 *   - the user's home folder (what is above it belongs to the system or others),
 *   - the first folder not owned by the user (it is someone else's tree).
 * A config file met on the way that fails the rule is refused loudly, never
 * skipped: skipping would pick a config further up and deploy the wrong thing.
 *
 * Root is not exempt: `sudo kraftwerk` in a user's project would execute that
 * user's code as root, which is exactly what git refuses since CVE-2022-24765.
 * `--config <file>` is the explicit way to trust a file of another owner.
 */
import { readFileSync, statSync, type Stats } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from '../errors.ts';

/** The user the file checks compare owners with; undefined where there are no uids (Windows). */
export interface TrustingUser {
  uid: number;
  home: string;
}

export function currentUser(): TrustingUser | undefined {
  const uid = process.getuid?.();
  if (uid === undefined) return undefined;
  return { uid, home: path.resolve(os.homedir()) };
}

/** A user name for a uid, from /etc/passwd (the CLI has no other name service); the number when unknown. */
export function userName(uid: number): string {
  return nameIn('/etc/passwd', uid) ?? `uid ${uid}`;
}

function groupName(gid: number): string {
  return nameIn('/etc/group', gid) ?? `gid ${gid}`;
}

/** The name of id `id` in a passwd-style file (name:x:id:…). */
function nameIn(file: string, id: number): string | undefined {
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const [name, , field] = line.split(':');
      if (name && Number(field) === id) return name;
    }
  } catch {
    // No such file: the number says enough.
  }
  return undefined;
}

function statOrUndefined(p: string): Stats | undefined {
  try {
    return statSync(p);
  } catch {
    return undefined;
  }
}

/**
 * The folders the config search looks in, nearest first (see the module comment
 * for where it ends). Without uids (Windows) only `.git` and home end it.
 */
export function searchFolders(cwd: string, user: TrustingUser | undefined = currentUser()): string[] {
  const folders: string[] = [];
  for (let dir = path.resolve(cwd); ; ) {
    folders.push(dir);
    const parent = path.dirname(dir);
    if (parent === dir || folders.length >= 256) break;
    if (statOrUndefined(path.join(dir, '.git'))) break;
    if (user && (dir === user.home || statOrUndefined(dir)?.uid !== user.uid)) break;
    dir = parent;
  }
  return folders;
}

/** Why `file` must not be used, or undefined when it may. `ownerChecked: false` (--config) skips the owner rule only. */
export function untrustedReason(file: string, user: TrustingUser | undefined = currentUser(), options: { ownerChecked?: boolean } = {}): string | undefined {
  if (!user) return undefined;
  const st = statOrUndefined(file);
  if (!st) return undefined;
  const me = userName(user.uid);
  if ((options.ownerChecked ?? true) && st.uid !== user.uid) {
    return `it is owned by ${userName(st.uid)}, not by ${me} who runs kraftwerk`;
  }
  if (st.mode & 0o022) {
    return `it is writable by ${st.mode & 0o002 ? 'every user' : `the group ${groupName(st.gid)}`} (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')})`;
  }
  const dir = path.dirname(file);
  const dst = statOrUndefined(dir);
  if (dst && dst.mode & 0o022 && !(dst.mode & 0o1000)) {
    return `its folder ${dir} is writable by ${dst.mode & 0o002 ? 'every user' : `the group ${groupName(dst.gid)}`} without the sticky bit, so others can replace the file`;
  }
  if (dst && (options.ownerChecked ?? true) && dst.uid !== user.uid && dst.uid !== 0) {
    return `its folder ${dir} is owned by ${userName(dst.uid)}, who can replace the file`;
  }
  return undefined;
}

/** What the user can do about a refused file: the message names the file and the fix. */
export function untrustedConfigError(file: string, reason: string, what = 'config file'): UsageError {
  const user = currentUser();
  const st = statOrUndefined(file);
  const hints: string[] = [];
  if (user && st && st.uid !== user.uid) {
    if (user.uid === 0 && process.env.SUDO_USER) {
      hints.push(`Run kraftwerk as ${process.env.SUDO_USER} without sudo (it needs no root on this machine).`);
    }
    hints.push(`If you trust the file, name it: kraftwerk --config ${file} …, or take it over: chown ${userName(user.uid)} ${file}`);
  } else {
    hints.push(`Make it writable by you only: chmod go-w ${file} ${path.dirname(file)}`);
  }
  return new UsageError(`refusing to use the ${what} ${file}: ${reason}; kraftwerk executes and trusts its config, like ssh and git refuse files others control`, {
    hint: hints.join('\n'),
  });
}

/** Throws when `file` may not be used (see untrustedReason). */
export function assertTrustedConfig(file: string, options: { explicit?: boolean; what?: string } = {}): void {
  const reason = untrustedReason(file, currentUser(), { ownerChecked: !options.explicit });
  if (reason) throw untrustedConfigError(file, reason, options.what);
}
