/**
 * Copying dump folders between a node and this machine with rsync over
 * OpenSSH (same host, port, keys and known_hosts as the ssh2 connection).
 * Data between two nodes goes through the machine running the CLI: no agent
 * forwarding, no node needs a key for another.
 */
import type { SshTarget } from './remote.ts';
import { rsyncSshCommand } from './rsync.ts';

function remoteSpec(target: SshTarget, path: string): string {
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  return `${target.user}@${host}:${path}`;
}

function baseArgs(target: SshTarget): string[] {
  const args = ['--recursive', '--links', '--times', '--compress', '--partial', '--stats', '--info=progress2', '-e', rsyncSshCommand(target)];
  if (target.sudo) args.push('--rsync-path=sudo -n rsync');
  return args;
}

/** rsync args that copy the folder `remoteDir` of a node into `localDir`. */
export function pullFolderArgs(target: SshTarget, remoteDir: string, localDir: string): string[] {
  return [...baseArgs(target), '--chmod=D0700,F0600', remoteSpec(target, remoteDir.replace(/\/?$/, '/')), localDir.replace(/\/?$/, '/')];
}

/** rsync args that copy `localDir` into the folder `remoteDir` of a node, owned by the login user (root), private. */
export function pushFolderArgs(target: SshTarget, localDir: string, remoteDir: string): string[] {
  return [...baseArgs(target), '--chmod=D0700,F0600', localDir.replace(/\/?$/, '/'), remoteSpec(target, remoteDir.replace(/\/?$/, '/'))];
}
