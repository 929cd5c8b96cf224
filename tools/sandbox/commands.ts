/**
 * Pure builders for everything the sandbox runs on the host: argv arrays for
 * local programs (no shell in between), the boot script (quoted through
 * core's `sh`), and the files written into a sandbox's root. lib.ts runs them.
 */
import { createHash } from 'node:crypto';
import { sh, raw, chain, type Script } from '../../core/index.ts';
import type { SandboxNetNames, SandboxSubnet } from './naming.ts';

/** Where machine-wide caches and sandbox roots live (root only, like the sandboxes themselves). */
export const CACHE_DIR = '/var/cache/kraftwerk';
export const ROOTFS_CACHE_DIR = `${CACHE_DIR}/rootfs`;
export const SNAPSHOT_DIR = `${CACHE_DIR}/snapshots`;
export const APT_PROXY_CACHE_DIR = `${CACHE_DIR}/apt-proxy`;
export const SANDBOX_ROOTS_DIR = '/var/lib/kraftwerk/sandboxes';

export interface RootfsSpec {
  suite: string;
  variant: string;
  mirror: string;
  include: readonly string[];
}

export const ROOTFS_SPEC: RootfsSpec = Object.freeze({
  suite: 'bookworm',
  variant: 'minbase',
  mirror: 'http://deb.debian.org/debian',
  include: Object.freeze(['openssh-server', 'python3', 'rsync', 'runit', 'ca-certificates']),
});

/**
 * Bumped when the way a cached root is prepared changes, so old tarballs are
 * not reused with a new recipe.
 */
const ROOTFS_RECIPE_VERSION = 1;

/** Cache key of a root file system: changes with the suite, mirror, variant or package list. */
export function rootfsKey(spec: RootfsSpec): string {
  const canonical = JSON.stringify({
    v: ROOTFS_RECIPE_VERSION,
    suite: spec.suite,
    variant: spec.variant,
    mirror: spec.mirror,
    include: [...spec.include].sort(),
  });
  return `${spec.suite}-${createHash('sha256').update(canonical).digest('hex').slice(0, 12)}`;
}

export function debootstrapArgv(spec: RootfsSpec, dir: string): string[] {
  return [
    'debootstrap',
    `--variant=${spec.variant}`,
    `--include=${[...spec.include].join(',')}`,
    spec.suite,
    dir,
    spec.mirror,
  ];
}

/**
 * Shrink a fresh debootstrap root before it is cached, and drop what must be
 * unique per sandbox: host keys (each sandbox generates its own) and the
 * build machine's hostname.
 */
export function rootfsCleanupScript(dir: string): Script {
  return chain(
    sh`chroot ${dir} apt-get clean`,
    sh`rm -f ${dir}/etc/ssh/ssh_host_*`,
    sh`rm -f ${dir}/etc/hostname ${dir}/etc/machine-id`,
  );
}

/** `tar` flags that keep owners, modes, capabilities and ACLs exactly. */
const TAR_FIDELITY = ['--numeric-owner', '--xattrs', '--xattrs-include=*', '--acls'];

export function tarCreateArgv(dir: string, tarball: string): string[] {
  return ['tar', ...TAR_FIDELITY, '--one-file-system', '-C', dir, '-cf', tarball, '.'];
}

export function tarExtractArgv(tarball: string, dir: string): string[] {
  return ['tar', ...TAR_FIDELITY, '-C', dir, '-xf', tarball];
}

/**
 * A sandbox root as an overlay on an unpacked cached root: made in an
 * instant, and only the sandbox's own changes are written (and removed).
 * Paths are ours (validated names and keys), so they hold no `,` or `:`.
 */
export function overlayMountArgv(lower: string, upper: string, work: string, target: string): string[] {
  return ['mount', '-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, target];
}

/** Host keys are generated inside the sandbox's root by its own OpenSSH. */
export function hostKeygenArgv(root: string): string[] {
  return ['chroot', root, 'ssh-keygen', '-A'];
}

export function clientKeygenArgv(keyFile: string, comment: string): string[] {
  return ['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', keyFile];
}

/** Network namespace and veth pair; the sandbox end is created directly inside the namespace. */
export function networkUpArgvs(net: SandboxNetNames, subnet: SandboxSubnet): string[][] {
  const { netns, vethHost, vethSandbox } = net;
  return [
    ['ip', 'netns', 'add', netns],
    ['ip', 'link', 'add', vethHost, 'type', 'veth', 'peer', 'name', vethSandbox, 'netns', netns],
    ['ip', 'addr', 'add', `${subnet.hostAddress}/${subnet.prefix}`, 'dev', vethHost],
    ['ip', 'link', 'set', vethHost, 'up'],
    ['ip', '-n', netns, 'link', 'set', 'lo', 'up'],
    ['ip', '-n', netns, 'addr', 'add', `${subnet.address}/${subnet.prefix}`, 'dev', vethSandbox],
    ['ip', '-n', netns, 'link', 'set', vethSandbox, 'up'],
    ['ip', '-n', netns, 'route', 'add', 'default', 'via', subnet.hostAddress],
  ];
}

/** Deleting the namespace deletes the sandbox's veth end, which deletes its peer. */
export function networkDownArgvs(net: SandboxNetNames): string[][] {
  return [
    ['ip', 'netns', 'del', net.netns],
    ['ip', 'link', 'del', net.vethHost],
  ];
}

const DEVICES: readonly [name: string, major: number, minor: number][] = [
  ['null', 1, 3],
  ['zero', 1, 5],
  ['full', 1, 7],
  ['random', 1, 8],
  ['urandom', 1, 9],
  ['tty', 5, 0],
];

const SANDBOX_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * Runs as PID 1 of the sandbox's new PID, mount and UTS namespaces (already
 * inside its network namespace): mounts what a Debian host expects, then
 * becomes runsvdir inside the chroot. All mounts live in the private mount
 * namespace, so they vanish with the last process; the host never sees them.
 */
export function bootScript(root: string, hostname: string): Script {
  const dev = `${root}/dev`;
  return chain(
    raw('set -e'),
    sh`mount -t proc proc ${root}/proc`,
    sh`mount -t sysfs -o ro sysfs ${root}/sys`,
    sh`mount -t tmpfs -o mode=755,size=65536k tmpfs ${dev}`,
    ...DEVICES.map(([name, major, minor]) => sh`mknod -m 666 ${`${dev}/${name}`} c ${major} ${minor}`),
    sh`mkdir ${`${dev}/pts`} ${`${dev}/shm`}`,
    sh`mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts ${`${dev}/pts`}`,
    sh`ln -s pts/ptmx ${`${dev}/ptmx`}`,
    sh`ln -s /proc/self/fd ${`${dev}/fd`}`,
    sh`ln -s /proc/self/fd/0 ${`${dev}/stdin`}`,
    sh`ln -s /proc/self/fd/1 ${`${dev}/stdout`}`,
    sh`ln -s /proc/self/fd/2 ${`${dev}/stderr`}`,
    sh`mount -t tmpfs -o mode=1777 tmpfs ${`${dev}/shm`}`,
    sh`mount -t tmpfs -o mode=755 tmpfs ${root}/run`,
    // Debian's runit services keep `supervise` as a link into /run/runit/supervise.
    sh`mkdir -p ${root}/run/sshd ${root}/run/lock ${root}/run/runit/supervise`,
    sh`hostname ${hostname}`,
    sh`exec chroot ${root} /usr/bin/env -i ${`PATH=${SANDBOX_PATH}`} HOME=/root LANG=C.UTF-8 /usr/bin/runsvdir -P /etc/service`,
  );
}

/**
 * The command that becomes the sandbox: enter its network namespace, make new
 * PID/mount/UTS namespaces (the forked child is PID 1 there), run the boot
 * script (kept in a file beside the root, so `ps` shows a short line).
 */
export function launchArgv(netns: string, bootFile: string): string[] {
  return [
    'ip', 'netns', 'exec', netns,
    'unshare', '--pid', '--mount', '--uts', '--fork', '--propagation', 'private',
    'sh', bootFile,
  ];
}

export interface RootFile {
  /** Absolute path inside the sandbox. */
  path: string;
  content: string;
  mode: number;
}

export interface SandboxRootOptions {
  name: string;
  address: string;
  proxyUrl: string;
  /** Public keys allowed to log in as root, one per entry. */
  authorizedKeys: readonly string[];
}

/** Files that make an unpacked root into this particular sandbox (written over a cached root or a snapshot). */
export function sandboxRootFiles(o: SandboxRootOptions): RootFile[] {
  const keys = o.authorizedKeys.map((k) => k.trim()).filter(Boolean);
  return [
    { path: '/etc/hostname', content: `${o.name}\n`, mode: 0o644 },
    {
      path: '/etc/hosts',
      content:
        `127.0.0.1\tlocalhost\n${o.address}\t${o.name}\n` +
        '::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n',
      mode: 0o644,
    },
    // No DNS inside: apt reaches the archive through the proxy by address.
    { path: '/etc/resolv.conf', content: '# Kraftwerk sandbox: no DNS; apt uses the host proxy\n', mode: 0o644 },
    {
      path: '/etc/apt/sources.list',
      content:
        'deb http://deb.debian.org/debian bookworm main\n' +
        'deb http://deb.debian.org/debian bookworm-updates main\n' +
        'deb http://deb.debian.org/debian-security bookworm-security main\n',
      mode: 0o644,
    },
    {
      path: '/etc/apt/apt.conf.d/01kraftwerk-proxy',
      content: `Acquire::http::Proxy "${o.proxyUrl}";\n`,
      mode: 0o644,
    },
    {
      path: '/etc/sv/ssh/run',
      content:
        '#!/bin/sh\n' +
        'exec 2>&1\n' +
        'mkdir -p /run/sshd && chmod 0755 /run/sshd\n' +
        'exec /usr/sbin/sshd -D -e\n',
      mode: 0o755,
    },
    { path: '/root/.ssh/authorized_keys', content: keys.map((k) => `${k}\n`).join(''), mode: 0o600 },
  ];
}

/**
 * Shell script run with `chroot <root> sh -c`, so that absolute symlinks in
 * the root (Debian's /etc/service is one) resolve inside it, never on the host.
 * Replaces Debian's OpenSSH runit service by a plain one and links it in.
 */
export function personalizeScript(files: readonly RootFile[]): Script {
  return chain(
    raw('set -e'),
    raw('rm -rf /etc/sv/ssh'),
    raw('mkdir -p -m 700 /root/.ssh'),
    ...files.map(
      (f) =>
        sh`mkdir -p "$(dirname ${f.path})" && rm -f ${f.path} && printf '%s' ${f.content} > ${f.path} && chmod ${f.mode.toString(8)} ${f.path}`,
    ),
    raw('ln -sfn /etc/sv/ssh /etc/service/ssh'),
  );
}

export const HOST_PUBLIC_KEYS_SCRIPT = raw('cat /etc/ssh/ssh_host_*_key.pub');

/** known_hosts lines for a sandbox from its host public keys (`type base64 [comment]`). */
export function knownHostsLines(address: string, hostPublicKeys: readonly string[]): string {
  return hostPublicKeys
    .map((k) => k.trim().split(/\s+/))
    .filter((parts) => parts.length >= 2)
    .map(([type, key]) => `${address} ${type} ${key}\n`)
    .join('');
}

export interface SshArgvTarget {
  host: string;
  port: number;
  user: string;
  identityFiles: readonly string[];
  knownHostsFiles: readonly string[];
}

/**
 * OpenSSH client argv for a sandbox: its own key and known_hosts, and strict
 * host key checking (the sandbox's keys were recorded when it was made).
 * `command` is an argv: each word is quoted for the remote shell.
 */
export function sshArgv(target: SshArgvTarget, command: readonly string[] = [], options: { tty?: boolean } = {}): string[] {
  const argv = ['ssh'];
  for (const f of target.identityFiles) argv.push('-i', f);
  argv.push(
    '-o', 'IdentitiesOnly=yes',
    '-o', `UserKnownHostsFile=${target.knownHostsFiles.join(' ')}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', 'ConnectTimeout=10',
    '-p', String(target.port),
  );
  if (options.tty) argv.push('-t');
  argv.push('-l', target.user, target.host);
  if (command.length > 0) argv.push('--', sh`${command}`.text);
  return argv;
}
