/**
 * Resolve a node the way OpenSSH would: `ssh -G` applies ~/.ssh/config (Host
 * blocks, Match, Include, defaults) and prints the result, so Kraftwerk, `ssh`
 * and rsync all reach the same host with the same user, port, keys and known_hosts.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir, hostname as localHostname, userInfo } from 'node:os';
import { KraftwerkError } from '../errors.ts';
import type { SshTarget } from './remote.ts';

/** The settings Kraftwerk uses from `ssh -G` output, as printed (no ~ or % expanded). */
export interface SshGConfig {
  hostname: string;
  user: string;
  port: number;
  identityFiles: string[];
  proxyJump?: string;
  proxyCommand?: string;
  userKnownHostsFiles: string[];
  globalKnownHostsFiles: string[];
  hostKeyAlias?: string;
  hashKnownHosts: boolean;
}

export function parseSshG(text: string): SshGConfig {
  const values = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const match = /^(\S+)\s+(.*)$/.exec(line.trim());
    if (!match) continue;
    const key = match[1]!.toLowerCase();
    values.set(key, [...(values.get(key) ?? []), match[2]!]);
  }
  const one = (key: string): string | undefined => {
    const v = values.get(key)?.[0];
    return v === undefined || v === 'none' ? undefined : v;
  };
  const list = (key: string): string[] => (one(key) ?? '').split(/\s+/).filter(Boolean);
  return {
    hostname: one('hostname') ?? '',
    user: one('user') ?? '',
    port: Number(one('port') ?? 22),
    identityFiles: values.get('identityfile') ?? [],
    proxyJump: one('proxyjump'),
    proxyCommand: one('proxycommand'),
    userKnownHostsFiles: list('userknownhostsfile'),
    globalKnownHostsFiles: list('globalknownhostsfile'),
    hostKeyAlias: one('hostkeyalias'),
    hashKnownHosts: one('hashknownhosts') === 'yes',
  };
}

/** The `~` and `%` tokens ssh expands in IdentityFile and UserKnownHostsFile. */
export function expandSshPath(
  path: string,
  tokens: { home: string; localUser: string; host: string; user: string; port: number; alias: string },
): string {
  const withHome = path === '~' || path.startsWith('~/') ? tokens.home + path.slice(1) : path;
  const table: Record<string, string> = {
    '%': '%',
    d: tokens.home,
    u: tokens.localUser,
    h: tokens.host,
    r: tokens.user,
    p: String(tokens.port),
    n: tokens.alias,
    l: localHostname().split('.')[0]!,
    L: localHostname(),
  };
  return withHome.replace(/%(.)/g, (whole, t: string) => table[t] ?? whole);
}

function runSshG(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile('ssh', args, { timeout: 15_000 }, (error, stdout, stderr) => {
      if (error) reject(Object.assign(error, { stderr }));
      else resolve({ stdout, stderr });
    });
    child.stdin?.end();
  });
}

/**
 * Where and how to reach `name`. `overrides` (from the node's entry in
 * kraftwerk.yaml) win over ~/.ssh/config the same way `ssh -p/-l/-i` do; an
 * override `host` is what ssh resolves (it may itself be a Host alias).
 */
export async function resolveSshTarget(name: string, overrides: Partial<SshTarget> = {}): Promise<SshTarget> {
  const host = overrides.host ?? name;
  const args = ['-G'];
  if (overrides.port !== undefined) args.push('-p', String(overrides.port));
  if (overrides.user !== undefined) args.push('-l', overrides.user);
  for (const file of overrides.identityFiles ?? []) args.push('-i', file);
  args.push('--', host);

  let output: string;
  try {
    output = (await runSshG(args)).stdout;
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') {
      throw new KraftwerkError('the OpenSSH client (ssh) is not installed', {
        hint: 'Install it (Debian/Ubuntu: apt-get install openssh-client); Kraftwerk reads ~/.ssh/config through `ssh -G`.',
      });
    }
    throw new KraftwerkError(`cannot read the SSH settings for ${name}: ${(e.stderr || e.message).trim()}`, {
      hint: `Check ~/.ssh/config; \`ssh -G ${host}\` shows what ssh makes of it.`,
    });
  }

  const config = parseSshG(output);
  if (config.proxyCommand && !config.proxyJump) {
    throw new KraftwerkError(`${name}: ProxyCommand in ~/.ssh/config is not supported`, {
      hint: 'Use ProxyJump instead (ProxyJump user@bastion), which Kraftwerk supports.',
    });
  }
  const tokens = {
    home: homedir(),
    localUser: userInfo().username,
    host: config.hostname,
    user: config.user,
    port: config.port,
    alias: host,
  };
  const expand = (p: string) => expandSshPath(p, tokens);
  const identityFiles = [...new Set(config.identityFiles.map(expand))].filter((f) => existsSync(f));
  // Accepted keys are recorded in the first file; the global files are only read, as ssh does.
  const knownHostsFiles =
    overrides.knownHostsFiles ?? [...config.userKnownHostsFiles, ...config.globalKnownHostsFiles].map(expand);

  return {
    name,
    host: config.hostname,
    port: config.port,
    user: config.user,
    identityFiles,
    proxyJump: config.proxyJump,
    knownHostsFiles,
    hostKeyAlias: overrides.hostKeyAlias ?? config.hostKeyAlias,
    hashKnownHosts: overrides.hashKnownHosts ?? config.hashKnownHosts,
    // Kraftwerk needs root on the server; any other login user gets there through sudo.
    sudo: overrides.sudo ?? config.user !== 'root',
  };
}
